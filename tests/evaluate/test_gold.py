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


def test_plateau_threshold_takes_the_middle_of_the_near_best_cuts():
    from medsyn_utils.evaluate.gold import plateau_threshold

    # F1 by cut: 0.2 → 0.545 (best), 0.3 → 0.4, 0.4 → 0.444, 0.5 → 0.5, 0.8 → 0.4, 0.9 → 0.5
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    labels = [1, 0, 0, 0, 1, 0, 0, 1]
    assert best_threshold(scores, labels).threshold == pytest.approx(0.2)
    assert plateau_threshold(scores, labels, tolerance=0.0).threshold == pytest.approx(0.2)
    # within 0.05 of the best: 0.2, 0.5 and 0.9 → the middle one
    middle = plateau_threshold(scores, labels, tolerance=0.05)
    assert middle.threshold == pytest.approx(0.5) and middle.f1 == pytest.approx(0.5)
    # within 0.11: 0.2, 0.4, 0.5, 0.9 → the lower of the two middle ones, a cut that was tried
    assert plateau_threshold(scores, labels, tolerance=0.11).threshold == pytest.approx(0.4)


def test_fold_ensemble_averages_its_models_chances():
    import numpy as np

    from medsyn_utils.evaluate.detector import FoldEnsemble

    class Fixed:
        def __init__(self, p):
            self.p = p

        def predict_proba(self, x):
            return np.column_stack([1 - np.full(len(x), self.p), np.full(len(x), self.p)])

    chances = FoldEnsemble([Fixed(0.2), Fixed(0.6)]).predict_proba(np.zeros((3, 2)))[:, 1]
    assert chances == pytest.approx([0.4, 0.4, 0.4])
