"""The knowledge graph: hierarchy, symptom edges with weights and sources, cache, queries."""

from __future__ import annotations

import ast
import json
import pickle
import time

import pandas as pd
import pytest

from medsyn_utils.core import corpus

from medsyn_utils.core import data

from medsyn_utils.kg import graph, sources
from medsyn_utils.cli.app import main
from medsyn_utils.core.errors import CodeError


@pytest.fixture(scope="module")
def kg(data_dir):
    return graph.load_graph()


def test_hierarchy_from_sub_code_to_chapter(kg):
    assert kg.lineage("J06.9") == [("code", "J06.9"), ("category", "J06"),
                                   ("block", "J00-J06"), ("chapter", "X")]
    assert kg.name("J06.9") == "Острая инфекция верхних дыхательных путей неуточненная"
    assert {"J06.0", "J06.8", "J06.9"} <= set(kg.descendants("J06"))


def test_nested_blocks_and_every_category_reaches_a_chapter(kg):
    for category in kg.rumedtop3_categories:
        assert kg.lineage(category)[-1][0] == "chapter", category


def test_code_lookup_normalises_and_suggests(kg):
    assert kg.resolve("j06.9") == "J06.9"
    assert kg.resolve("М54.00") == "M54.0"  # ICD-10-CM with a Cyrillic М → WHO parent
    with pytest.raises(CodeError, match=r"unknown ICD-10 code 'U99'.*close matches"):
        kg.resolve("U99")
    with pytest.raises(CodeError, match="malformed"):
        kg.resolve("J6")


def _main_proc_weight(code: str, symptom: str) -> float:
    table = pd.read_csv(data.fetch(sources.MAIN_PROC_FILE), dtype=str)
    row = table[table["icd_10"] == code].iloc[0]
    pairs = zip(ast.literal_eval(row["symptoms_ru"]), ast.literal_eval(row["sympotoms_tf_idfs"]))
    return max(float(w) for s, w in pairs if graph.normalize_symptom(s) == symptom)


def test_tfidf_edges_keep_weight_and_source(kg):
    edge = kg.graph.get_edge_data(("code", "J06.9"), ("symptom", "кашель"), key="medsyn_tfidf")
    assert edge["source"] == "medsyn_tfidf" and edge["type"] == "has_symptom"
    assert edge["weight"] == pytest.approx(_main_proc_weight("J06.9", "кашель"))
    table = kg.symptoms("J06", rollup=True)
    row = table.set_index("symptom").loc["кашель"]
    assert row["weight"] == pytest.approx(edge["weight"])
    assert "medsyn_tfidf" in row["sources"] and "J06.9" in row["codes"]
    assert table["weight"].dropna().is_monotonic_decreasing


def test_rollup_adds_sub_code_symptoms(kg):
    own = set(kg.symptoms("J06")["symptom"])
    rolled = set(kg.symptoms("J06", rollup=True)["symptom"])
    assert own < rolled
    assert set(kg.symptoms("J06.9")["symptom"]) <= rolled


def test_every_source_contributes(kg):
    stats = kg.stats()
    assert all(count > 0 for count in stats["symptom_edges_by_source"].values())
    assert stats["nodes"]["chapter"] == 22


def test_rumedprime_counts_use_train_visits_only(kg):
    markup = corpus.load_markup()
    codes = corpus.load_rumedtop3().set_index("idx")["code"]
    markup = markup.assign(code=markup["idx"].map(codes))
    train = markup[markup["split"] == "train"].groupby(["code", "symptom"]).size()
    every = markup.groupby(["code", "symptom"]).size()
    differs = (every.reindex(train.index) != train)
    assert differs.any() or len(every) > len(train)  # dev/test would change the counts
    for (code, symptom), count in train.head(50).items():
        edge = kg.graph.get_edge_data(kg.node(code), ("symptom", graph.normalize_symptom(symptom)),
                                      key="rumedprime_train")
        assert edge is not None and edge["weight"] == count
    only_outside_train = every.index.difference(train.index)
    for code, symptom in list(only_outside_train)[:50]:
        edge = kg.graph.get_edge_data(kg.node(code), ("symptom", graph.normalize_symptom(symptom)),
                                      key="rumedprime_train")
        assert edge is None


def test_symptom_strings_are_normalised(kg):
    assert graph.normalize_symptom("  Тошнота,  РВОТА ") == "тошнота, рвота"
    assert graph.normalize_symptom("Ёжики.") == "ежики"
    names = [n[1] for n in kg.graph if n[0] == "symptom"]
    assert len(names) == len(set(names))
    assert all(name == graph.normalize_symptom(name) for name in names)


def test_queries(kg):
    shared = kg.shared_symptoms("J06", top=5)
    assert len(shared) == 5 and shared["shared"].is_monotonic_decreasing
    assert "J06" not in set(shared["category"])
    codes = kg.codes_for_symptom("Кашель")
    assert "J06.9" in set(codes["code"])
    ego = kg.ego("J06", radius=1, max_symptoms=5)
    assert ("category", "J06") in ego and ("block", "J00-J06") in ego
    assert sum(1 for n in ego if n[0] == "symptom" and kg.graph.has_edge(("category", "J06"), n)) <= 5


def test_sex_specific_codes(kg):
    assert kg.sex("N40") == "male"
    assert kg.sex("C53") == "female"
    assert kg.sex("O80") == "female"
    assert kg.sex("J06") is None


def test_coverage_of_rumedtop3(kg):
    coverage = kg.coverage()
    assert len(coverage) == 105
    assert coverage["covered"].all()


def test_cache_is_keyed_by_input_checksums(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path))
    first = graph.load_graph()
    files = list((tmp_path / "graph").glob("kg-*.pickle"))
    assert len(files) == 1
    started = time.perf_counter()
    again = graph.load_graph()
    assert again.graph.number_of_edges() == first.graph.number_of_edges()
    assert time.perf_counter() - started < 30  # generous: the point is it loads, not timing
    original = graph.verified_checksums
    monkeypatch.setattr(graph, "verified_checksums", lambda names=None: {
        n: ("0" * 64 if n == sources.MKB_FILE else s) for n, s in original(names).items()})
    assert graph.cache_key() != files[0].stem.removeprefix("kg-")


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path))
    path = tmp_path / "graph" / f"kg-{graph.cache_key()}.pickle"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a pickle")
    kg = graph.load_graph()
    assert kg.graph.number_of_nodes() > 1000
    with path.open("rb") as handle:
        assert pickle.load(handle).number_of_nodes() == kg.graph.number_of_nodes()


def test_kg_stats_cli(capsys, data_dir):
    assert main(["kg", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) >= {"nodes", "edges", "rumedtop3_categories_total",
                          "rumedtop3_categories_covered"}
    assert stats["rumedtop3_categories_total"] == 105
    assert stats["rumedtop3_categories_covered"] == 105
    assert stats["edges"]["contains"] > 10000


def test_unknown_code_cli_is_one_line(capsys, data_dir):
    assert main(["kg", "symptoms", "Q9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medsyn: error: malformed ICD-10 code") and "\n" not in err
