"""The medical knowledge graph's queries (:class:`KnowledgeGraph`) and its cache.

The graph itself (nodes ``(type, id)``, ``contains`` and per-source ``has_symptom`` edges) is built
by :mod:`medsyn_utils.kg.sources`. :func:`load_graph` caches the built graph in the user cache
under a key made of the input checksums and :data:`GRAPH_VERSION`; loading the cache takes a
fraction of a second, and a process loads it once.
"""

from __future__ import annotations

import difflib
import hashlib
import pickle
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx
import pandas as pd

from medsyn_utils.core.codes import clean_code, normalize_code
from medsyn_utils.core.data import fetch, verified_checksums
from medsyn_utils.core.errors import CodeError
from medsyn_utils.core.paths import cache_dir
from medsyn_utils.core.provenance import write_atomic
from medsyn_utils.kg.sources import (GRAPH_FILES, GRAPH_VERSION, SYMPTOM_SOURCES, Node,
                                     build_graph, normalize_symptom)

NODE_TYPES = ("chapter", "block", "category", "code", "symptom")
MIN_SYMPTOMS_FOR_COVERAGE = 5


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
