"""``e5-logreg``: logistic regression on mean-pooled sentence embeddings of the kit's encoder.

The third member of the classifier panel, unlike the TF-IDF pair in what it sees: a frozen
encoder (by default the embedded ``multilingual-e5-small``, the scorer's own; any local
Hugging Face folder works, e.g. the tiny test encoder) turns each note into the mean of its
last hidden states (``query: `` prefix, L2-normalised), and a multinomial logistic regression
is fitted on those vectors. Embeddings are cached per encoder and text for the process, so every
setting, seed and control shares them; the fit itself takes seconds and is deterministic.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any, Sequence

import numpy as np

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.downstream.base import CodeClassifier, check_training_labels

EMBEDDED_E5 = "embedded:multilingual-e5-small"
DEFAULT_EMBEDDING_C = 10.0  # chosen on dev (tuning.PANEL_DEV)
OPTIONS = ("encoder", "C", "max_length", "batch_size", "max_iter")

_CACHE: dict[tuple[str, int], dict[str, np.ndarray]] = {}
_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _load(encoder: str) -> Any:
    """Tokenizer and model of ``encoder`` (``embedded:…``, a folder), loaded once per process."""
    if encoder not in _MODELS:
        from transformers import AutoModel, AutoTokenizer

        from medsyn_utils.score.encoders import resolve_encoder

        path = resolve_encoder(encoder).path
        try:
            _MODELS[encoder] = (AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval())
        except (OSError, ValueError) as error:
            raise ModelError(f"encoder {encoder!r} cannot be loaded from {path} "
                             f"({type(error).__name__}): give a local model folder or "
                             f"{EMBEDDED_E5!r}") from None
    return _MODELS[encoder]


def embed(texts: Sequence[str], encoder: str = EMBEDDED_E5, *, max_length: int = 128,
          batch_size: int = 32) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings, one row per text (cached per encoder and text)."""
    import torch

    texts = [str(t) for t in texts]
    with _LOCK:
        cache = _CACHE.setdefault((encoder, int(max_length)), {})
        todo = sorted({t for t in texts if t not in cache}, key=len)
        if todo:
            tokenizer, model = _load(encoder)
            with torch.inference_mode():
                for start in range(0, len(todo), batch_size):
                    chunk = todo[start:start + batch_size]
                    batch = tokenizer([f"query: {t}" for t in chunk], padding=True, truncation=True,
                                      max_length=max_length, return_tensors="pt")
                    hidden = model(**{k: v for k, v in batch.items()
                                      if k in ("input_ids", "attention_mask")}).last_hidden_state
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                    pooled = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
                    cache.update(zip(chunk, pooled))
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([cache[t] for t in texts])


class EmbeddingLogreg(CodeClassifier):
    """Logistic regression on mean-pooled encoder embeddings (frozen encoder)."""

    name = "e5-logreg"
    deterministic = True

    def __init__(self, encoder: str = EMBEDDED_E5, *, C: float = DEFAULT_EMBEDDING_C,
                 max_length: int = 128, batch_size: int = 32, max_iter: int = 1000,
                 seed: int = 0) -> None:
        if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
            raise ParameterError(f"C={C} must be a finite positive number")
        if max_length < 8 or batch_size < 1:
            raise ParameterError(f"max_length={max_length} must be at least 8 and "
                                 f"batch_size={batch_size} at least 1")
        self.encoder, self.C, self.max_length = str(encoder), float(C), int(max_length)
        self.batch_size, self.max_iter, self.seed = int(batch_size), int(max_iter), seed

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        return embed(texts, self.encoder, max_length=self.max_length, batch_size=self.batch_size)

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            class_weight: str | None = None) -> "EmbeddingLogreg":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        check_training_labels(texts, labels)
        model = LogisticRegression(C=self.C, class_weight=class_weight, max_iter=self.max_iter,
                                   random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(self.vectors(list(texts)), np.asarray(labels))
        self.model_, self.classes_ = model, model.classes_
        return self

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise ModelError(f"{self.name} is not fitted: call fit(texts, labels) first")
        values = self.model_.decision_function(self.vectors(list(texts)))
        return np.stack([-values, values], axis=1) if values.ndim == 1 else values

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "encoder": self.encoder, "pooling": "mean, L2-normalised",
                "C": self.C, "max_length": self.max_length, "max_iter": self.max_iter}
