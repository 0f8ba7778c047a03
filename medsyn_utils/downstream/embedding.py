"""``e5-logreg``: logistic regression on mean-pooled sentence embeddings of the kit's encoder.

The third member of the classifier panel, unlike the TF-IDF pair in what it sees: a frozen
encoder (by default the embedded ``multilingual-e5-small``, the scorer's own; any local
Hugging Face folder works, e.g. the tiny test encoder) turns each note into the mean of its
token states at the scorer's layer (9 for the embedded e5, at most the encoder's last), in
scoring's default precision (``auto``: mixed bf16 on CPUs with native bf16, else fp32),
L2-normalised here, standardised (per dimension, on each fit's training rows) and a multinomial
logistic regression (lbfgs) is fitted on them. The fit uses one BLAS thread: the panel already
runs two fits side by side, and on 2 shared cores a multi-threaded BLAS made a 3 s fit take
75 s (benchmarks/README.md).

The vectors come from :func:`medsyn_utils.score.embeddings.embed_texts`, the door to the cache
scoring fills: a synthetic note scoring already embedded is read, not embedded again, and the
real RuMedTop3 notes are embedded once per machine and kept in the same user cache
(``MEDSYN_CACHE_DIR``, else ``~/.cache/medsyn/embeddings``). Within a process they are also
kept in memory, so every setting, seed and control shares them; the fit takes seconds and is
deterministic.
"""

from __future__ import annotations

import math
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.downstream.base import CodeClassifier, check_training_labels
from medsyn_utils.score.encoders import EMBEDDED_E5

DEFAULT_EMBEDDING_C = 0.03  # chosen on dev (tuning.PANEL_DEV), on standardised vectors
OPTIONS = ("encoder", "C", "layer", "max_iter")

_CACHE: dict[tuple[str, int], dict[str, np.ndarray]] = {}
_LOCK = threading.Lock()


_FIT_LOCK = threading.Lock()


@contextmanager
def threadpool_limits_one() -> Iterator[None]:
    """One BLAS thread (see the module's docstring), one fit or scoring at a time: the limit is
    process-wide, and a second thread leaving its own limit would lift it under a running fit
    (its numbers would then depend on thread timing)."""
    from threadpoolctl import threadpool_limits

    with _FIT_LOCK, threadpool_limits(limits=1):
        yield


def embed(texts: Sequence[str], encoder: str = EMBEDDED_E5, *, layer: int | None = None,
          cache_dir: str | None = None) -> np.ndarray:
    """Mean-pooled, L2-normalised vectors, one row per text (an empty text: zeros), from the
    embedding cache scoring fills (texts not in it are embedded once and added)."""
    from medsyn_utils.score.embeddings import SCORING_PRECISION, embed_texts, scoring_layer

    texts = [str(t) for t in texts]
    layer = scoring_layer(encoder) if layer is None else int(layer)
    with _LOCK:
        memo = _CACHE.setdefault((encoder, layer), {})
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        if todo:
            vectors = np.nan_to_num(embed_texts(todo, encoder=encoder, layer=layer,
                                                precision=SCORING_PRECISION, cache_dir=cache_dir), nan=0.0)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
            memo.update(zip(todo, vectors.astype(np.float32)))
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([memo[t] for t in texts])


class EmbeddingLogreg(CodeClassifier):
    """Logistic regression on mean-pooled encoder embeddings (frozen encoder)."""

    name = "e5-logreg"
    deterministic = True

    def __init__(self, encoder: str = EMBEDDED_E5, *, C: float = DEFAULT_EMBEDDING_C,
                 layer: int | None = None, max_iter: int = 1000, seed: int = 0) -> None:
        if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
            raise ParameterError(f"C={C} must be a finite positive number")
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or layer < 1):
            raise ParameterError(f"layer={layer} must be a positive integer, or None for the "
                                 f"scoring layer")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ParameterError(f"max_iter={max_iter} must be a positive integer")
        self.encoder, self.C, self.layer = str(encoder), float(C), layer
        self.max_iter, self.seed = max_iter, seed

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        return embed(texts, self.encoder, layer=self.layer)

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            class_weight: str | None = None) -> "EmbeddingLogreg":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        check_training_labels(texts, labels)
        model = make_pipeline(StandardScaler(), LogisticRegression(
            C=self.C, class_weight=class_weight, max_iter=self.max_iter, random_state=self.seed))
        vectors = self.vectors(list(texts))
        with warnings.catch_warnings(), threadpool_limits_one():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(vectors, np.asarray(labels))
        self.model_, self.classes_ = model, model.classes_
        return self

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise ModelError(f"{self.name} is not fitted: call fit(texts, labels) first")
        vectors = self.vectors(list(texts))
        with threadpool_limits_one():
            values = self.model_.decision_function(vectors)
        return np.stack([-values, values], axis=1) if values.ndim == 1 else values

    def describe(self) -> dict[str, Any]:
        from medsyn_utils.score.embeddings import SCORING_PRECISION, embedding_scorer, scoring_layer

        layer = scoring_layer(self.encoder) if self.layer is None else self.layer
        precision = embedding_scorer(encoder=self.encoder, layer=layer,
                                     precision=SCORING_PRECISION).precision
        return {"name": self.name, "encoder": self.encoder, "precision": precision, "layer": layer,
                "pooling": "mean of the token states, L2-normalised, standardised per fit",
                "vectors": "score.embeddings.embed_texts (the embedding cache scoring fills)",
                "C": self.C, "max_iter": self.max_iter}
