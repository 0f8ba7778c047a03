"""Text vectors of the corpus metrics, and the record of which vectors a run used.

Two kinds (the evaluation stage's ``corpus_embed``):

- ``e5`` (default): the kit's encoder, the one scoring uses (embedded multilingual-e5-small,
  layer 9, the scorer's ``auto`` precision), mean-pooled token states, L2-normalised. Read
  through the embedding cache scoring fills (:func:`medsyn_utils.score.embeddings.embed_texts`,
  keyed by encoder, layer, precision and the text's SHA-256): the notes of a scored run are not
  embedded again, and the real reference notes are embedded once per user cache, so a later run
  reads them instead of running the encoder.
- ``hashed``: hashed character 3-grams (256 dimensions, L2-normalised), seconds for thousands
  of notes; for quick runs and tests. Surface similarity only: MAUVE, the embedding AUC,
  Fréchet, Vendi and DCR then measure character statistics, not meaning.

Each vector source is a callable (texts → ``len(texts)`` × dim float32) with a ``record()``:
what the stage writes into ``evaluation.json`` (``corpus.vectors``) so a reader knows which
vectors the numbers stand on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsyn_utils.core.errors import ParameterError

Embed = Callable[[list[str]], np.ndarray]
KINDS = ("e5", "hashed")
HASHED_DIM = 256
CHUNK = 256  # texts per encoder call: each chunk is in the cache before the next starts


def hashed_ngram_embed(texts: list[str], dim: int = HASHED_DIM) -> np.ndarray:
    """A deterministic stand-in encoder: hashed character 3-grams, L2-normalised (tests, bench)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), n_features=dim,
                                   alternate_sign=False, norm="l2")
    return vectorizer.transform([str(t) for t in texts]).toarray().astype(np.float32)


class HashedVectors:
    """:func:`hashed_ngram_embed` with its record."""

    kind = "hashed"

    def __init__(self, dim: int = HASHED_DIM) -> None:
        self.dim = dim
        self.texts = 0
        self.seconds = 0.0

    def __call__(self, texts: list[str]) -> np.ndarray:
        start = time.perf_counter()
        vectors = hashed_ngram_embed(texts, self.dim)
        self.texts += len(texts)
        self.seconds += time.perf_counter() - start
        return vectors

    def record(self) -> dict[str, Any]:
        return {"kind": self.kind, "vectors": "hashed character 3-grams (scikit-learn "
                "HashingVectorizer, char_wb), L2-normalised", "dim": self.dim,
                "texts": self.texts, "seconds": round(self.seconds, 3)}


class EncoderVectors:
    """The kit's encoder through the shared embedding cache; counts what came from the cache.

    ``record()`` names the encoder, layer, the resolved precision, the cache key (the scorer's
    hash: model, versions, layer, precision) and, for the calls so far, how many distinct texts
    were read from the cache and how many the encoder embedded.
    """

    kind = "e5"

    def __init__(self, encoder: str | None = None, layer: int | None = None, *,
                 precision: str | None = None, cache_dir: str | Path | None = None,
                 device: str | None = None) -> None:
        from medsyn_utils.score.embeddings import SCORING_PRECISION
        from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5

        self.encoder = encoder or EMBEDDED_E5
        self.layer = DEFAULT_LAYER if layer is None else layer
        self.precision = SCORING_PRECISION if precision is None else precision
        self.cache_dir, self.device = cache_dir, device
        self.texts = self.from_cache = self.embedded = 0
        self.seconds = 0.0
        self._scorer: Any = None

    def _options(self) -> dict[str, Any]:
        return dict(encoder=self.encoder, layer=self.layer, precision=self.precision,
                    cache_dir=self.cache_dir, device=self.device)

    def _cache(self):
        from medsyn_utils.score.embedding_cache import cache_for
        from medsyn_utils.score.embeddings import embedding_scorer

        if self._scorer is None:  # the scorer embed_texts uses: its cache key and precision
            self._scorer = embedding_scorer(encoder=self.encoder, layer=self.layer,
                                            precision=self.precision, device=self.device)
        return cache_for(self._scorer, self.cache_dir)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled vectors, L2-normalised; an empty text gets a zero vector.

        Texts not in the cache are embedded shortest first in chunks of :data:`CHUNK`, each
        chunk stored before the next starts: similar lengths pad little, and an interrupted run
        keeps what it embedded."""
        from medsyn_utils.score.embeddings import embed_texts
        from medsyn_utils.score.scorer import text_of

        start = time.perf_counter()
        texts = [str(t) for t in texts]
        distinct = list(dict.fromkeys(s for s in (text_of(t).strip() for t in texts) if s))
        cached = self._cache().get(distinct)
        missing = sorted((t for t in distinct if t not in cached), key=len)
        for first in range(0, len(missing), CHUNK):
            embed_texts(missing[first:first + CHUNK], **self._options())
        vectors = np.nan_to_num(embed_texts(texts, **self._options()), nan=0.0)  # all cached now
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.texts += len(distinct)
        self.from_cache += len(cached)
        self.embedded += len(missing)
        self.seconds += time.perf_counter() - start
        return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def record(self) -> dict[str, Any]:
        scorer = self._scorer
        return {"kind": self.kind, "encoder": self.encoder, "layer": self.layer,
                "vectors": "mean of the token states at the layer (special tokens included), "
                           "L2-normalised",
                "precision": getattr(scorer, "precision", None), "precision_asked": self.precision,
                "device": getattr(scorer, "device", self.device),
                "dim": int(scorer.model.config.hidden_size) if scorer is not None else None,
                "cache_key": getattr(scorer, "hash", None),
                "cache_file": str(self._cache().path) if scorer is not None else None,
                "texts": self.texts, "from_cache": self.from_cache, "embedded": self.embedded,
                "seconds": round(self.seconds, 3)}


def vectors_for(kind: str, **options: Any) -> HashedVectors | EncoderVectors:
    """A fresh vector source of ``kind`` (``"e5"`` or ``"hashed"``); ``options`` go to
    :class:`EncoderVectors` (encoder, layer, precision, cache_dir, device)."""
    if kind == "e5":
        return EncoderVectors(**options)
    if kind == "hashed":
        return HashedVectors()
    raise ParameterError(f"corpus_embed {kind!r} is unknown: use one of {', '.join(KINDS)}")


def e5_embed(texts: list[str]) -> np.ndarray:
    """The kit's encoder (embedded multilingual-e5-small, layer 9, the scorer's precision),
    mean-pooled and L2-normalised, through the embedding cache scoring fills: a text scoring
    embedded, or a real reference note embedded before, is not embedded again. An empty text
    gets a zero vector."""
    return EncoderVectors()(texts)


def vectors_record(embed: Embed) -> dict[str, Any]:
    """What ``embed`` is, for the stage record: its ``record()``, else its name."""
    record = getattr(embed, "record", None)
    if callable(record):
        return record()
    return {"kind": "custom", "name": getattr(embed, "__name__", type(embed).__name__)}
