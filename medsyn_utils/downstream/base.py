"""The classifier interface every downstream classifier implements, and the helpers they share.

Its own module so that :mod:`classifiers`, :mod:`transformer` and :mod:`embedding` all import
from here and none imports another (no import cycle).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medsyn_utils.core.errors import ParameterError


def check_training_labels(texts: Sequence[Any], labels: Sequence[str]) -> None:
    """One label per text and at least two distinct codes."""
    if len(texts) != len(labels):
        raise ParameterError(f"{len(texts)} texts but {len(labels)} labels: pass one label per text")
    if len(set(labels)) < 2:
        raise ParameterError(f"training set has {len(set(labels))} distinct code(s): a classifier "
                             f"needs at least 2; use larger shares of real or synthetic notes")


def balanced_weights(labels: Sequence[str]) -> dict[str, float]:
    """``n / (n_codes × count)`` per code: the class-weighted control (sklearn's "balanced")."""
    codes, counts = np.unique(np.asarray(labels), return_counts=True)
    return {str(c): float(len(labels) / (len(codes) * n)) for c, n in zip(codes, counts)}


class CodeClassifier:
    """Interface: ``fit(texts, labels, class_weight=None)``, ``scores(texts)``, ``classes_``."""

    name = "base"
    deterministic = False  # True: the same training set always gives the same model
    classes_: np.ndarray

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            class_weight: str | None = None) -> "CodeClassifier":
        raise NotImplementedError

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, one column per class in ``classes_``; higher ranks first."""
        raise NotImplementedError

    def top_k(self, texts: Sequence[str], k: int = 3) -> list[list[str]]:
        """The ``k`` most likely codes per text, best first."""
        top = np.argsort(-self.scores(texts), axis=1, kind="stable")[:, :k]
        return [[str(c) for c in self.classes_[row]] for row in top]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}
