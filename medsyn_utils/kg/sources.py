"""Building the knowledge graph from its registered sources (networkx, in Russian).

Nodes are keyed by ``(type, id)`` with types ``chapter`` (``X``), ``block`` (``J00-J06``),
``category`` (``J06``), ``code`` (sub-codes such as ``J06.9``) and ``symptom`` (a normalised
Russian string). Edges:

* ``contains``: the МКБ-10 hierarchy, chapter → block → (block →) category → code;
* ``has_symptom``: disease → symptom, one edge per source (the MultiDiGraph key is the source),
  with ``weight`` and ``source`` attributes, so a user sees where each symptom came from.

Symptom sources (:data:`SYMPTOM_SOURCES`): the MedSyn disease table (TF-IDF weighted and
unweighted lists), WikiMed lists, HSDN co-occurrence TF-IDF mapped through MeSH ids and the MedSyn
English→Russian symptom names, and symptom counts from the RuMedPrime mark-up of **train** visits
only (so dev/test stay clean for the downstream experiment). Queries live in
:mod:`medsyn_utils.kg.graph`.
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import networkx as nx
import pandas as pd

from medsyn_utils.core import corpus
from medsyn_utils.core.codes import clean_code, normalize_code
from medsyn_utils.core.data import checksums, fetch
from medsyn_utils.core.errors import CodeError

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
