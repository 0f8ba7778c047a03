"""Gold pairs from the RuMedSymptomRec mark-up, and the detection measures, with known answers."""

from __future__ import annotations

import pytest

from medsyn_utils.evaluate.gold import auc, best_threshold, detection, gold_pairs, stem_baseline


def test_gold_pairs_remove_the_marked_spans(data_dir):
    pairs = gold_pairs()
    assert len(pairs) == 2 * 3660 and set(pairs["split"]) == {"train", "dev", "test"}
    visit = pairs[pairs["idx"] == "q5fc2cb1"].set_index("label")
    assert visit.loc[1, "symptom"] == "кожа, сухая"
    assert visit.loc[1, "text"].startswith("Сухость кожи, мышечная слабость")
    full = visit.loc[1, "text"]
    assert visit.loc[0, "text"] == full[7:12] + full[13:]  # spans (7, 12), (13, …): "Сухость", "," removed
    assert (pairs.groupby("idx")["label"].sum() == 1).all()


def test_detection_measures_known_answers():
    scores, labels = [0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0]
    assert detection(scores, labels, 0.5).as_dict() == {"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                                        "threshold": 0.5}
    assert auc(scores, labels) == pytest.approx(0.75)
    assert auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)  # ties count half
    best = best_threshold(scores, labels)
    assert best.threshold == pytest.approx(0.3) and best.f1 == pytest.approx(0.8)


def test_stem_baseline_is_the_issues_rule():
    assert stem_baseline("Боль в мышцах ног", "боль в мышцах") == 1.0  # "боль" and "мышц"
    assert stem_baseline("Боли в мышцах ног", "боль в мышцах") == 0.5  # "боли" has no "боль"
    assert stem_baseline("головная боль", "боль в мышцах") == 0.5
    assert stem_baseline("насморк", "кашель") == 0.0
