"""Mean-pooled note vectors from the kit's encoder, each distinct text embedded once: the door the
evaluation stage uses to the cache scoring fills (:mod:`medsyn_utils.score.embedding_cache`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.score.config import ScoringConfig
from medsyn_utils.score.embedding_cache import cache_for
from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5, resolve_encoder
from medsyn_utils.score.scorer import NoteScorer, text_of

# Scoring's default precision, read from its config (the one source): vectors asked for in it
# are the ones scoring cached (the evaluation's corpus vectors and e5-logreg ask for it).
SCORING_PRECISION: str = ScoringConfig.model_fields["precision"].default

_SCORERS: dict[tuple, Any] = {}
_LAYERS: dict[str, int] = {}


def scoring_layer(encoder: str) -> int:
    """The layer scoring uses for ``encoder`` (:data:`DEFAULT_LAYER`), or the encoder's last when
    it has fewer."""
    if encoder not in _LAYERS:
        from transformers import AutoConfig

        path = resolve_encoder(encoder).path
        try:
            total = int(AutoConfig.from_pretrained(path).num_hidden_layers)
        except (OSError, ValueError, AttributeError) as error:
            raise ModelError(f"encoder {encoder!r} cannot be loaded from {path} "
                             f"({type(error).__name__}): give a local model folder or "
                             f"{EMBEDDED_E5!r}") from None
        _LAYERS[encoder] = min(DEFAULT_LAYER, total)
    return _LAYERS[encoder]


def embedding_scorer(*, encoder: str = EMBEDDED_E5, layer: int = DEFAULT_LAYER,
                     precision: str = SCORING_PRECISION, device: str | None = None,
                     windowed: bool = False) -> NoteScorer:
    """The scorer :func:`embed_texts` embeds with (loaded once per setting): its ``hash`` keys the
    cache and its ``precision`` is what ``auto`` resolved to."""
    settings = (encoder, layer, precision, device, windowed)
    if settings not in _SCORERS:
        _SCORERS[settings] = NoteScorer(encoder, layer, precision=precision, device=device,
                                        windowed=windowed)
    return _SCORERS[settings]


def embed_texts(texts: Sequence[str], *, encoder: str = EMBEDDED_E5, layer: int = DEFAULT_LAYER,
                precision: str = SCORING_PRECISION, cache_dir: str | Path | None = None,
                device: str | None = None, windowed: bool = False) -> np.ndarray:
    """Mean-pooled note vectors (``len(texts)`` × hidden, float32) at ``layer`` of ``encoder``.

    Texts are stripped, as scoring strips them; vectors scoring already wrote for the same
    encoder, layer, precision (``auto`` resolves as the scorer resolves it) and windowing come
    from ``cache_dir`` (default: the user's cache, ``~/.cache/medsyn/embeddings``), the rest are
    embedded once and stored. An empty text has no tokens: its row is NaN.
    """
    if isinstance(texts, str):
        raise ParameterError("embed_texts got one string: pass a list of texts")
    cleaned = [text_of(t).strip() for t in texts]
    scorer = embedding_scorer(encoder=encoder, layer=layer, precision=precision, device=device,
                              windowed=windowed)
    cache = cache_for(scorer, cache_dir)
    distinct = list(dict.fromkeys(t for t in cleaned if t))
    vectors = cache.get(distinct)
    missing = [t for t in distinct if t not in vectors]
    if missing:
        fresh = {t: x.float().mean(dim=0).cpu().numpy() for t, x in scorer.embed(missing).items()}
        cache.put(fresh)
        vectors.update(fresh)
    hidden = int(scorer.model.config.hidden_size)
    out = np.full((len(cleaned), hidden), np.nan, dtype=np.float32)
    for i, t in enumerate(cleaned):
        if t:
            out[i] = vectors[t]
    return out
