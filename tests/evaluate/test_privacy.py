"""Copying and privacy: verbatim spans with their source visit, distances to the closest record."""

from __future__ import annotations

import numpy as np
import pytest

from medsyn_utils.evaluate import privacy

TRAIN = [
    "Жалобы на сухой кашель, першение в горле и повышение температуры до 38 градусов в течение трёх дней.",
    "Беспокоит головная боль давящего характера в височной области, усиливается к вечеру после работы.",
]


def test_a_note_copied_from_a_train_note_is_flagged_with_its_visit_id():
    index = privacy.SpanIndex(TRAIN, ["v-1", "v-2"])
    note = "Пациентка сообщает: беспокоит головная боль давящего характера в височной области, усиливается к вечеру."
    span = index.longest_span(note)
    assert span.visit_id == "v-2" and span.words == 11
    assert span.text.startswith("беспокоит головная боль")


def test_seven_shared_words_are_not_a_copy():
    index = privacy.SpanIndex(TRAIN, ["v-1", "v-2"])
    span = index.longest_span("Сегодня сухой кашель, першение в горле и повышение давления, не более.")
    assert span.words == 0 and span.visit_id is None


def test_closest_records_finds_the_nearest_row():
    reference = np.array([[1.0, 0.0], [0.0, 1.0]])
    dist, where = privacy.closest_records(np.array([[0.1, 1.0], [2.0, 0.0]]), reference)
    assert list(where) == [1, 0]
    assert dist[1] == pytest.approx(0.0, abs=1e-6) and 0 < dist[0] < 0.01


def test_dcr_comparison_known_answers():
    rng = np.random.default_rng(0)
    held = rng.uniform(0.1, 0.5, 400)
    copies = privacy.dcr_comparison(np.zeros(100), held, seed=0, boot=50)
    assert copies["attack_auc"] == pytest.approx(1.0) and copies["share_closer"] == pytest.approx(1.0)
    alike = privacy.dcr_comparison(rng.uniform(0.1, 0.5, 400), held, seed=0, boot=50)
    assert abs(alike["attack_auc"] - 0.5) < 0.08 and abs(alike["share_closer"] - 0.05) < 0.04
    lo, hi = alike["attack_auc_ci"]
    assert lo <= alike["attack_auc"] <= hi


def test_pair_similarity_of_aligned_rows():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert privacy.pair_similarity(a, a) == pytest.approx([1.0, 1.0])
    assert privacy.pair_similarity(a, np.array([[0.0, 1.0], [-1.0, -1.0]])) == pytest.approx([0.0, -1.0])


def test_rank_auc_counts_ties_half_and_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    assert privacy.rank_auc(np.array([1.0, 1.0]), np.array([1.0])) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 30).astype(float)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(30)], np.r_[pos, neg])
    assert privacy.rank_auc(pos, neg) == pytest.approx(expected)
