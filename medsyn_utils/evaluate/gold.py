"""Gold pairs for the symptom matcher: RuMedSymptomRec mark-up on RuMedTop3 visits.

Each marked visit gives two pairs for its symptom: the full complaint text (positive) and the text
with the marked spans removed (negative). Thresholds are chosen on pairs of *train* visits and
reported on dev and test visits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.corpus import load_markup, load_rumedtop3


def gold_pairs() -> pd.DataFrame:
    """``idx``, ``split``, ``symptom``, ``text``, ``label`` (1 full note, 0 spans removed)."""
    markup = load_markup()
    markup = markup[markup["symptom"].notna() & markup["split"].notna()]
    markup = markup[markup["symptom"].str.strip() != ""]
    texts = load_rumedtop3().set_index("idx")["text"]
    rows = []
    for idx, symptom, spans, split in markup[["idx", "symptom", "keep_spans", "split"]].itertuples(
            index=False):
        if idx not in texts.index or not spans:
            continue
        full = str(texts[idx])
        kept = "".join(full[a:b] for a, b in spans)
        if kept == full:
            continue
        rows.append((idx, split, symptom.strip(), full, 1))
        rows.append((idx, split, symptom.strip(), kept, 0))
    return pd.DataFrame(rows, columns=["idx", "split", "symptom", "text", "label"])


def stem_baseline(text: str, symptom: str) -> float:
    """The issue's baseline: share of the symptom's words whose first 4 letters occur in the text."""
    words = [w for w in symptom.lower().replace(",", " ").split() if len(w) >= 3]
    if not words:
        return 0.0
    low = text.lower()
    return sum(w[:4] in low for w in words) / len(words)


@dataclass(frozen=True)
class Detection:
    precision: float
    recall: float
    f1: float
    threshold: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


def detection(scores: Sequence[float], labels: Sequence[int], threshold: float) -> Detection:
    """Precision, recall and F1 of ``score >= threshold`` as the positive call."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    pred = s >= threshold
    tp = float((pred & (y == 1)).sum())
    precision = tp / pred.sum() if pred.sum() else 0.0
    recall = tp / (y == 1).sum() if (y == 1).sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Detection(precision, recall, f1, float(threshold))


def best_threshold(scores: Sequence[float], labels: Sequence[int]) -> Detection:
    """The threshold with the best F1 (ties: the lower threshold)."""
    candidates = np.unique(np.asarray(scores, float))
    best = max((detection(scores, labels, t) for t in candidates), key=lambda d: (d.f1, -d.threshold))
    return best


def plateau_threshold(scores: Sequence[float], labels: Sequence[int],
                      tolerance: float = 0.002) -> Detection:
    """The middle one (lower median) of the thresholds whose F1 is within ``tolerance`` of the
    best: the F1 curve of a good detector is flat at its top, and its single best point is the
    noisiest."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    candidates = np.unique(s)
    f1 = np.array([detection(s, y, t).f1 for t in candidates])
    near = candidates[f1 >= f1.max() - tolerance]
    return detection(s, y, float(near[(len(near) - 1) // 2]))


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (rank form, ties counted half)."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    ranks = pd.Series(s).rank(method="average").to_numpy()
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate_detector(frame: pd.DataFrame, score: Callable[[str, str], float],
                      threshold: float | None = None) -> dict[str, object]:
    """Scores every pair; the threshold chosen on train pairs (or given), reported on held-out."""
    scores = np.array([score(t, s) for t, s in zip(frame["text"], frame["symptom"])], float)
    train = (frame["split"] == "train").to_numpy()
    labels = frame["label"].to_numpy()
    chosen = threshold if threshold is not None else best_threshold(scores[train], labels[train]).threshold
    held = ~train
    return {"threshold": round(float(chosen), 4), "pairs_train": int(train.sum()),
            "pairs_heldout": int(held.sum()),
            "train": detection(scores[train], labels[train], chosen).as_dict(),
            "heldout": detection(scores[held], labels[held], chosen).as_dict()
            | {"auc": round(auc(scores[held], labels[held]), 4)},
            "scores": scores}
