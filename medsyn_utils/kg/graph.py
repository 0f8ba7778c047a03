"""The medical knowledge graph (networkx), keyed by ICD-10 codes, in Russian.

Nodes are keyed by ``(type, id)`` with types ``chapter`` (``X``), ``block`` (``J00-J06``),
``category`` (``J06``), ``code`` (sub-codes such as ``J06.9``) and ``symptom`` (a normalised
Russian string). Edges:

* ``contains``: the МКБ-10 hierarchy, chapter → block → (block →) category → code;
* ``has_symptom``: disease → symptom, one edge per source (the MultiDiGraph key is the source),
  with ``weight`` and ``source`` attributes, so a user sees where each symptom came from.

Symptom sources (:data:`SYMPTOM_SOURCES`): the MedSyn disease table (TF-IDF weighted and
unweighted lists), WikiMed lists, HSDN co-occurrence TF-IDF mapped through MeSH ids and the MedSyn
English→Russian symptom names, and symptom counts from the RuMedPrime mark-up of **train** visits
only (so dev/test stay clean for the downstream experiment).

The built graph is cached in the user cache under a key made of the input checksums and
:data:`GRAPH_VERSION`; loading the cache takes a fraction of a second.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import pickle
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable

import networkx as nx
import pandas as pd

from medsyn_utils.core import corpus
from medsyn_utils.core.codes import clean_code, normalize_code
from medsyn_utils.core.data import checksums, fetch, verified_checksums
from medsyn_utils.core.errors import CodeError
from medsyn_utils.core.paths import cache_dir
from medsyn_utils.core.provenance import write_atomic

GRAPH_VERSION = "2"
MKB_FILE = "mkb10/1.2.643.5.1.13.13.11.1005_2.27.csv"
MAIN_PROC_FILE = "medsyn/main_proc.csv"
WIKIMED_FILE = "medsyn/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json"
HSDN_FILE = "hsdn/symptoms-DO.tsv"
SYMPTOM_NAMES_FILE = "medsyn/eng_to_ru/symptoms_eng_ru.csv"
FREQUENCY_FILE = "medsyn/codes/top_ICD10_codes_percent.txt"
SEX_FILE = "medsyn/codes/icd_gender_split.json"
GRAPH_FILES: tuple[str, ...] = (
    MKB_FILE, MAIN_PROC_FILE, WIKIMED_FILE, HSDN_FILE, SYMPTOM_NAMES_FILE, FREQUENCY_FILE,
    SEX_FILE, corpus.MARKUP_FILE, *corpus.RUMEDTOP3_FILES.values(),
)

SYMPTOM_SOURCES: dict[str, str] = {
    "medsyn_tfidf": "MedSyn disease table, Russian symptoms with TF-IDF weights (symptoms_ru)",
    "medsyn_list": "MedSyn disease table, unweighted Russian symptom lists (symptoms_ru_no_stat)",
    "wikimed": "WikiMed symptom lists per ICD-10 code (MedSyn, with RuMedPrime)",
    "hsdn": "Human Symptoms-Disease Network TF-IDF, mapped by MeSH id, names translated to Russian",
    "rumedprime_train": "RuMedPrime symptom mark-up, number of train visits of the category",
}
WEIGHTED_SOURCES = ("medsyn_tfidf", "hsdn")  # TF-IDF scale, used for sampling weights
NODE_TYPES = ("chapter", "block", "category", "code", "symptom")
MIN_SYMPTOMS_FOR_COVERAGE = 5

Node = tuple[str, str]


def normalize_symptom(text: str) -> str:
    """Lower case, ``ё`` → ``е``, one space between words, no edge punctuation."""
    text = unicodedata.normalize("NFC", str(text)).lower().replace("ё", "е")
    text = re.sub(r"\s+", " ", text).strip(" \t,.;:-–—")
    return text


def _code_type(code: str) -> str:
    return "category" if len(code) == 3 else "code"


def _literal_list(value: object) -> list:
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return []
    return list(parsed) if isinstance(parsed, (list, tuple)) else []


# --------------------------------------------------------------------------- building


def _add_hierarchy(graph: nx.MultiDiGraph) -> dict[str, Node]:
    """МКБ-10 rows → chapter/block/category/code nodes and ``contains`` edges."""
    table = pd.read_csv(fetch(MKB_FILE), sep=";", dtype=str, encoding="utf-8")
    by_id: dict[str, Node] = {}
    for row in table.itertuples(index=False):
        raw = str(row.MKB_CODE).strip()
        if re.fullmatch(r"[IVXL]+", raw):
            node: Node = ("chapter", raw)
        elif "-" in raw:
            node = ("block", raw)
        else:
            code = clean_code(raw)
            node = (_code_type(code), code)
        graph.add_node(node, type=node[0], id=node[1], name_ru=str(row.MKB_NAME).strip(),
                       actual=str(row.ACTUAL) == "1")
        by_id[str(row.ID)] = node
    for row in table.itertuples(index=False):
        parent = by_id.get(str(row.ID_PARENT))
        if parent is not None:
            graph.add_edge(parent, by_id[str(row.ID)], key="contains", type="contains")
    return {node[1]: node for node in by_id.values() if node[0] in ("category", "code")}


def _code_node(graph: nx.MultiDiGraph, codes: dict[str, Node], raw: str,
               source: str) -> Node | None:
    """Node of a source's code in WHO form; codes unknown to МКБ-10 get a node of their own."""
    try:
        code = normalize_code(raw, codes)
    except CodeError:
        return None
    if code in codes:
        return codes[code]
    node = (_code_type(code), code)
    if node not in graph:
        graph.add_node(node, type=node[0], id=code, name_ru="", actual=False, in_mkb10=False,
                       added_by=source)
        parent = codes.get(code[:3])
        if parent is not None and parent != node:
            graph.add_edge(parent, node, key="contains", type="contains")
    codes[code] = node
    return node


def _add_symptom(graph: nx.MultiDiGraph, disease: Node, symptom: str, source: str,
                 weight: float) -> bool:
    name = normalize_symptom(symptom)
    if not name or len(name) < 2:
        return False
    node = ("symptom", name)
    if node not in graph:
        graph.add_node(node, type="symptom", id=name, name_ru=name)
    data = graph.get_edge_data(disease, node, key=source)
    if data is None:
        graph.add_edge(disease, node, key=source, type="has_symptom", source=source,
                       weight=float(weight))
    elif weight > data["weight"]:  # duplicates within a source: keep the largest weight
        data["weight"] = float(weight)
    return True


def _add_medsyn(graph: nx.MultiDiGraph, codes: dict[str, Node]) -> dict[str, list[Node]]:
    """MedSyn disease table: weighted and unweighted symptoms, English names, sex, MeSH ids."""
    table = pd.read_csv(fetch(MAIN_PROC_FILE), dtype=str)
    by_mesh: dict[str, list[Node]] = {}
    for row in table.itertuples(index=False):
        node = _code_node(graph, codes, str(row.icd_10), "medsyn")
        if node is None:
            continue
        attrs = graph.nodes[node]
        if not attrs.get("name_ru") and isinstance(row.names_ru, str):
            attrs["name_ru"] = row.names_ru.strip()
        if isinstance(row.Name, str):
            attrs.setdefault("name_en", row.Name.strip())
        if isinstance(row.gender, str) and row.gender in ("male", "female"):
            attrs["sex"] = row.gender
        symptoms, weights = _literal_list(row.symptoms_ru), _literal_list(row.sympotoms_tf_idfs)
        for symptom, weight in zip(symptoms, weights):
            _add_symptom(graph, node, symptom, "medsyn_tfidf", float(weight))
        if isinstance(row.symptoms_ru_no_stat, str):
            for symptom in row.symptoms_ru_no_stat.split(","):
                _add_symptom(graph, node, symptom, "medsyn_list", 1.0)
        for mesh in _literal_list(row.MESH):
            by_mesh.setdefault(str(mesh).replace("MESH:", ""), []).append(node)
    return by_mesh


def _add_wikimed(graph: nx.MultiDiGraph, codes: dict[str, Node]) -> None:
    lists = json.loads(Path(fetch(WIKIMED_FILE)).read_text(encoding="utf-8"))
    for raw, symptoms in lists.items():
        node = _code_node(graph, codes, raw, "wikimed")
        if node is not None:
            for symptom in symptoms:
                _add_symptom(graph, node, symptom, "wikimed", 1.0)


def _add_hsdn(graph: nx.MultiDiGraph, by_mesh: dict[str, list[Node]]) -> dict[str, int]:
    """HSDN edges where the disease's MeSH id maps to a code and the symptom has a Russian name."""
    table = pd.read_csv(fetch(HSDN_FILE), sep="\t", dtype={"disease_id": str})
    names = pd.read_csv(fetch(SYMPTOM_NAMES_FILE), dtype=str).dropna()
    russian = dict(zip(names["symp_eng"].str.strip(), names["symp_ru"]))
    counts = Counter()
    for row in table.itertuples(index=False):
        nodes = by_mesh.get(str(row.disease_id))
        name = russian.get(str(row.symptom_name).strip())
        if not nodes:
            counts["unmapped_disease"] += 1
            continue
        if not name:
            counts["untranslated_symptom"] += 1
            continue
        for node in nodes:
            counts["edges"] += _add_symptom(graph, node, name, "hsdn", float(row.tfidf_score))
    return dict(counts)


def _add_rumedprime(graph: nx.MultiDiGraph, codes: dict[str, Node]) -> None:
    """Symptom counts per category from the mark-up of train visits (never dev/test)."""
    markup = corpus.load_markup()
    train = corpus.load_rumedtop3("train").set_index("idx")["code"]
    markup = markup[markup["split"] == "train"].assign(code=lambda f: f["idx"].map(train))
    counts = markup.groupby(["code", "symptom"]).size()
    for (code, symptom), count in counts.items():
        node = _code_node(graph, codes, str(code), "rumedprime_train")
        if node is not None:
            _add_symptom(graph, node, symptom, "rumedprime_train", float(count))


def _add_frequencies_and_sex(graph: nx.MultiDiGraph, codes: dict[str, Node]) -> None:
    lines = Path(fetch(FREQUENCY_FILE)).read_text(encoding="utf-8").splitlines()[1:]
    for code, share in (line.split("\t") for line in lines if "\t" in line):
        node = _code_node(graph, codes, str(code), "frequency")
        if node is not None:
            graph.nodes[node]["visit_share"] = float(share)
    lists = json.loads(Path(fetch(SEX_FILE)).read_text(encoding="utf-8"))
    for key, values in lists.items():
        if not isinstance(values, list):
            continue
        sex = "female" if "female" in key else "male"
        for raw in values:
            try:
                code = clean_code(raw)
            except CodeError:
                continue
            node = codes.get(code)
            if node is not None:
                graph.nodes[node]["sex"] = sex
                graph.nodes[node]["sex_source"] = "WHO ICD-10 vol. 2"
    # WHO lists pregnancy (chapter XV, O00-O99) as female as a whole; a category whose every
    # sub-code is listed for one sex is that sex too.
    for code, node in codes.items():
        if code.startswith("O"):
            graph.nodes[node].setdefault("sex", "female")
    for code, node in codes.items():
        if len(code) == 3 and "sex" not in graph.nodes[node]:
            children = [c for _, c, k in graph.out_edges(node, keys=True) if k == "contains"]
            sexes = {graph.nodes[c].get("sex") for c in children}
            if children and len(sexes) == 1 and None not in sexes:
                graph.nodes[node]["sex"] = sexes.pop()
    for split_code in corpus.load_rumedtop3()["code"].unique():
        node = codes.get(clean_code(split_code))
        if node is not None:
            graph.nodes[node]["rumedtop3"] = True


def build_graph() -> nx.MultiDiGraph:
    """Build the graph from the registered sources (checksums verified on read)."""
    graph = nx.MultiDiGraph(version=GRAPH_VERSION)
    codes = _add_hierarchy(graph)
    by_mesh = _add_medsyn(graph, codes)
    _add_wikimed(graph, codes)
    graph.graph["hsdn"] = _add_hsdn(graph, by_mesh)
    _add_rumedprime(graph, codes)
    _add_frequencies_and_sex(graph, codes)
    graph.graph["sources"] = {name: checksums([name])[name] for name in GRAPH_FILES}
    return graph


def cache_key() -> str:
    """Hash of the input checksums and the graph version: a new key whenever either changes."""
    digest = hashlib.sha256(GRAPH_VERSION.encode())
    for name, sha in sorted(verified_checksums(list(GRAPH_FILES)).items()):
        digest.update(f"{name}={sha}\n".encode())
    return digest.hexdigest()[:16]


def load_graph(rebuild: bool = False) -> "KnowledgeGraph":
    """The knowledge graph, from the cache when its key matches, else built and cached.

    The input files are verified against their checksums on the first build; a cached graph is
    only reused under the same input checksums.
    """
    path = cache_dir("graph") / f"kg-{cache_key()}.pickle"
    if str(path) in _LOADED and not rebuild:
        return _LOADED[str(path)]  # stages that query it many times share one copy
    if path.is_file() and not rebuild:
        try:
            with path.open("rb") as handle:
                _LOADED[str(path)] = KnowledgeGraph(pickle.load(handle))
                return _LOADED[str(path)]
        except (pickle.UnpicklingError, EOFError, AttributeError):
            pass  # a damaged cache is rebuilt
    for name in GRAPH_FILES:
        fetch(name)  # verify every input before building
    graph = build_graph()
    write_atomic(path, pickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL))
    _LOADED[str(path)] = KnowledgeGraph(graph)
    return _LOADED[str(path)]


_LOADED: dict[str, "KnowledgeGraph"] = {}


# --------------------------------------------------------------------------- queries


@dataclass
class KnowledgeGraph:
    """Queries a researcher needs, over the networkx graph in :attr:`graph`."""

    graph: nx.MultiDiGraph
    _cache: dict = field(default_factory=dict, repr=False)

    @cached_property
    def codes(self) -> dict[str, Node]:
        """Every category and sub-code id → node."""
        return {n[1]: n for n in self.graph if n[0] in ("category", "code")}

    @cached_property
    def categories(self) -> list[str]:
        return sorted(n[1] for n in self.graph if n[0] == "category")

    @cached_property
    def rumedtop3_categories(self) -> list[str]:
        return sorted(n[1] for n, d in self.graph.nodes(data=True) if d.get("rumedtop3"))

    def resolve(self, code: str) -> str:
        """Normalise a code and check it exists; unknown codes get close matches suggested."""
        cleaned = clean_code(code)
        if cleaned in self.codes:
            return cleaned
        who = normalize_code(cleaned, self.codes)
        if who in self.codes:
            return who
        close = difflib.get_close_matches(cleaned, list(self.codes), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise CodeError(f"unknown ICD-10 code {code!r} (not in МКБ-10 nor the symptom "
                        f"sources){hint}")

    def node(self, code: str) -> Node:
        return self.codes[self.resolve(code)]

    def name(self, code: str) -> str:
        """Russian name (official МКБ-10 where listed, else the MedSyn table's)."""
        return self.graph.nodes[self.node(code)].get("name_ru", "")

    def attributes(self, code: str) -> dict:
        return dict(self.graph.nodes[self.node(code)])

    def parent(self, node: Node) -> Node | None:
        for parent, _, key in self.graph.in_edges(node, keys=True):
            if key == "contains":
                return parent
        return None

    def lineage(self, code: str) -> list[Node]:
        """The code and its ancestors up to the chapter: ``J06.9 → J06 → J00-J06 → X``."""
        path, node = [], self.node(code)
        while node is not None:
            path.append(node)
            node = self.parent(node)
        return path

    def descendants(self, code: str) -> list[str]:
        """Sub-codes below a code (all levels), sorted."""
        node = self.node(code)
        found, stack = [], [node]
        while stack:
            current = stack.pop()
            for _, child, key in self.graph.out_edges(current, keys=True):
                if key == "contains":
                    found.append(child[1])
                    stack.append(child)
        return sorted(found)

    def symptom_edges(self, code: str, rollup: bool = False,
                      sources: Iterable[str] | None = None) -> pd.DataFrame:
        """Long table of symptom edges: ``code``, ``symptom``, ``source``, ``weight``.

        ``rollup=True`` adds the edges of every sub-code (a category's symptoms are the union of
        its own and its sub-codes').
        """
        wanted = set(sources) if sources is not None else None
        unknown = (wanted or set()) - set(SYMPTOM_SOURCES)
        if unknown:
            raise CodeError(f"unknown symptom source(s) {sorted(unknown)}: use any of "
                            f"{', '.join(SYMPTOM_SOURCES)}")
        root = self.resolve(code)
        codes = [root, *(self.descendants(root) if rollup else [])]
        rows = []
        for item in codes:
            for _, target, key, data in self.graph.out_edges(self.codes[item], keys=True,
                                                             data=True):
                if data.get("type") == "has_symptom" and (wanted is None or key in wanted):
                    rows.append((item, target[1], key, data["weight"]))
        return pd.DataFrame(rows, columns=["code", "symptom", "source", "weight"])

    def symptoms(self, code: str, rollup: bool = False,
                 sources: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per distinct symptom of a code, strongest first.

        Columns: ``symptom``; ``weight`` (TF-IDF from the MedSyn table, else HSDN; NaN where no
        source weights it); one column per source with that source's weight (max over sub-codes;
        counts for ``rumedprime_train``); ``sources`` (comma-separated); ``codes`` (where found).
        """
        edges = self.symptom_edges(code, rollup=rollup, sources=sources)
        columns = ["symptom", "weight", *SYMPTOM_SOURCES, "sources", "codes"]
        if edges.empty:
            return pd.DataFrame(columns=columns)
        wide = edges.pivot_table(index="symptom", columns="source", values="weight",
                                 aggfunc="max")
        wide = wide.reindex(columns=list(SYMPTOM_SOURCES))
        weight = wide["medsyn_tfidf"].fillna(wide["hsdn"])
        grouped = edges.groupby("symptom")
        table = pd.DataFrame({
            "symptom": wide.index,
            "weight": weight.to_numpy(),
            **{source: wide[source].to_numpy() for source in SYMPTOM_SOURCES},
            "sources": grouped["source"].agg(lambda s: ",".join(sorted(set(s)))).reindex(wide.index).to_numpy(),
            "codes": grouped["code"].agg(lambda s: ",".join(sorted(set(s)))).reindex(wide.index).to_numpy(),
        })
        order = table.assign(_n=table[list(SYMPTOM_SOURCES)].notna().sum(axis=1))
        order = order.sort_values(["weight", "_n", "symptom"], ascending=[False, False, True],
                                  na_position="last")
        return order.drop(columns="_n").reset_index(drop=True)

    def codes_for_symptom(self, symptom: str) -> pd.DataFrame:
        """Codes linked to a symptom, with source and weight (exact normalised match)."""
        node = ("symptom", normalize_symptom(symptom))
        if node not in self.graph:
            names = [n[1] for n in self.graph if n[0] == "symptom"]
            close = difflib.get_close_matches(node[1], names, n=5, cutoff=0.6)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise CodeError(f"unknown symptom {symptom!r}{hint}")
        rows = [(source[1], self.graph.nodes[source].get("name_ru", ""), key, data["weight"])
                for source, _, key, data in self.graph.in_edges(node, keys=True, data=True)]
        return (pd.DataFrame(rows, columns=["code", "name_ru", "source", "weight"])
                .sort_values(["code", "source"]).reset_index(drop=True))

    def _category_symptom_sets(self) -> dict[str, frozenset[str]]:
        if "sets" not in self._cache:
            sets: dict[str, set[str]] = {}
            for source, target, data in self.graph.edges(data=True):
                if data.get("type") == "has_symptom":
                    sets.setdefault(source[1][:3], set()).add(target[1])
            self._cache["sets"] = {k: frozenset(v) for k, v in sets.items()}
        return self._cache["sets"]

    def shared_symptoms(self, code: str, top: int = 10) -> pd.DataFrame:
        """Categories sharing the most symptoms with a code's category (rolled up), with Jaccard."""
        category = self.resolve(code)[:3]
        sets = self._category_symptom_sets()
        mine = sets.get(category, frozenset())
        rows = []
        for other, theirs in sets.items():
            if other == category:
                continue
            shared = len(mine & theirs)
            if shared:
                rows.append((other, self.name(other) if other in self.codes else "", shared,
                             shared / len(mine | theirs)))
        table = pd.DataFrame(rows, columns=["category", "name_ru", "shared", "jaccard"])
        return table.sort_values(["shared", "jaccard", "category"],
                                 ascending=[False, False, True]).head(top).reset_index(drop=True)

    def ego(self, code: str, radius: int = 1, max_symptoms: int | None = 15) -> nx.MultiDiGraph:
        """Neighbourhood of a code (edges in both directions), symptoms capped at the strongest."""
        center = self.node(code)
        ego = nx.ego_graph(self.graph, center, radius=radius, undirected=True)
        if max_symptoms is not None:
            table = self.symptoms(code)
            keep = set(table["symptom"].head(max_symptoms))
            drop = [n for n in ego if n[0] == "symptom" and n[1] not in keep
                    and self.graph.has_edge(center, n)]
            ego = ego.copy()
            ego.remove_nodes_from(drop)
        return ego

    def sex(self, code: str) -> str | None:
        """``male``/``female`` for sex-specific codes (the code, or its category), else None."""
        node = self.node(code)
        value = self.graph.nodes[node].get("sex")
        if value is None and node[0] == "code":
            value = self.graph.nodes[self.codes[node[1][:3]]].get("sex") if node[1][:3] in self.codes else None
        return value

    def visit_share(self) -> pd.Series:
        """Share of outpatient visits per three-character category (MedSyn code frequencies)."""
        values = {n[1]: d["visit_share"] for n, d in self.graph.nodes(data=True)
                  if "visit_share" in d and n[0] == "category"}
        return pd.Series(values, name="visit_share").sort_values(ascending=False)

    def coverage(self, minimum: int = MIN_SYMPTOMS_FOR_COVERAGE) -> pd.DataFrame:
        """RuMedTop3 categories with their number of distinct Russian symptoms after roll-up."""
        rows = []
        for category in self.rumedtop3_categories:
            table = self.symptoms(category, rollup=True)
            rows.append((category, self.name(category), len(table),
                         int(table["weight"].notna().sum()), len(table) >= minimum))
        return pd.DataFrame(rows, columns=["category", "name_ru", "symptoms", "weighted",
                                           "covered"])

    def stats(self) -> dict:
        """Counts by node and edge type, edges by source, and RuMedTop3 coverage."""
        nodes = Counter(n[0] for n in self.graph)
        edges = Counter(d.get("type") for _, _, d in self.graph.edges(data=True))
        by_source = Counter(k for _, _, k, d in self.graph.edges(keys=True, data=True)
                            if d.get("type") == "has_symptom")
        coverage = self.coverage()
        return {
            "nodes": {t: nodes.get(t, 0) for t in NODE_TYPES},
            "edges": dict(sorted(edges.items())),
            "symptom_edges_by_source": {s: by_source.get(s, 0) for s in SYMPTOM_SOURCES},
            "rumedtop3_categories_total": int(len(coverage)),
            "rumedtop3_categories_covered": int(coverage["covered"].sum()),
        }
