"""Diversity: known answers for distinct-n, self-BLEU, Vendi and near-duplicate clusters."""

from __future__ import annotations

import numpy as np
import pytest

from medsyn_utils.evaluate import diversity

NOTE = "Пациент жалуется на боль в горле и сухой кашель в течение трёх дней, температура до 38."
OTHERS = [
    "Беспокоит головная боль давящего характера в височной области, усиливается к вечеру.",
    "Жалобы на изжогу после еды и горечь во рту, периодически тошнота по утрам.",
    "Отмечает боли в поясничной области при наклонах, иррадиирующие в левую ногу.",
]


def test_two_identical_notes_form_one_cluster_and_different_notes_none():
    clusters = diversity.near_duplicate_clusters([OTHERS[0], NOTE, OTHERS[1], NOTE, OTHERS[2]])
    assert clusters == [[1, 3]]
    assert diversity.near_duplicate_clusters(OTHERS) == []


def test_a_near_copy_joins_the_cluster_and_shared_trigrams_say_why():
    near = NOTE.replace("трёх", "четырёх")
    clusters = diversity.near_duplicate_clusters([NOTE, OTHERS[0], near], threshold=0.7)
    assert clusters == [[0, 2]]
    shared = diversity.shared_word_trigrams([NOTE, near])
    assert "боль в горле" in shared and not any("четырёх" in s for s in shared)


def test_distinct_n_known_values():
    assert diversity.distinct_n(["а б а б"], 1) == pytest.approx(0.5)
    assert diversity.distinct_n(["а б а б"], 2) == pytest.approx(2 / 3)
    assert diversity.distinct_n(["а"], 2) is None


def test_self_bleu_is_one_for_copies_and_low_for_different_notes():
    assert diversity.self_bleu([NOTE] * 5, sample=5, seed=0)["mean"] == pytest.approx(1.0)
    low = diversity.self_bleu([NOTE, *OTHERS], sample=4, seed=0)
    assert low["n"] == 4 and low["mean"] < 0.2
    assert diversity.sentence_bleu(["а", "б"], [["а", "б"]], max_n=2) == pytest.approx(1.0)


def test_vendi_is_one_for_identical_and_n_for_orthogonal_embeddings():
    assert diversity.vendi_score(np.ones((6, 4))) == pytest.approx(1.0)
    assert diversity.vendi_score(np.eye(5)) == pytest.approx(5.0)


def test_fast_self_bleu_equals_the_mean_of_sentence_bleu_against_the_others():
    texts = [NOTE, *OTHERS, NOTE.replace("горле", "ухе"), OTHERS[0] + " " + NOTE, "боль", ""]
    tokens = [diversity.words(t) for t in texts]
    pick = np.random.default_rng(7).choice(len(texts), size=len(texts), replace=False)
    expected = np.mean([diversity.sentence_bleu(tokens[i], [tokens[j] for j in pick if j != i])
                        for i in pick])
    assert diversity.self_bleu(texts, sample=len(texts), seed=7)["mean"] == pytest.approx(expected)


def test_diversity_summary_gives_values_and_spreads_on_subsamples():
    texts = [NOTE, NOTE, *OTHERS, *(o + " " + NOTE for o in OTHERS)]
    vecs = np.random.default_rng(0).normal(size=(len(texts), 8))
    out = diversity.diversity_summary(texts, vecs, 8, seed=0, threshold=0.7, bleu_sample=10)
    assert out["n"] == 8 and out["near_duplicate_clusters"] == 1
    assert out["spread_subsample"] == 6 and all(v is None or v >= 0 for v in out["spread"].values())
    assert set(out["spread"]) == {"distinct_1", "distinct_2", "distinct_3", "self_bleu", "vendi",
                                  "near_duplicate_clusters", "near_duplicate_share"}
