"""Copying and privacy: distance to the closest real train note, measured against how close
unseen real notes come to the train notes; verbatim real spans with their source visit id;
similarity of a note to its own style example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medsyn_utils.evaluate.realism import words

MIN_SPAN_WORDS = 8


def unit_rows(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def closest_records(query: np.ndarray, reference: np.ndarray, *, batch: int = 2048
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance (1 − cos) of each query row to its closest reference row, and that row."""
    q, r = unit_rows(query), unit_rows(reference)
    if len(r) == 0:
        raise ValueError("distance to closest record needs at least one reference embedding")
    dist = np.empty(len(q), dtype=np.float64)
    where = np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), batch):
        sims = q[start:start + batch] @ r.T
        best = sims.argmax(1)
        where[start:start + batch] = best
        dist[start:start + batch] = 1.0 - sims[np.arange(len(best)), best]
    return np.clip(dist, 0.0, 2.0), where


def rank_auc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties counted half (Mann–Whitney AUC)."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if len(pos) == 0 or len(neg) == 0:
        return None
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, pos, side="left")
    ties = np.searchsorted(neg_sorted, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(pos) * len(neg)))


def dcr_comparison(synthetic_dcr: np.ndarray, heldout_dcr: np.ndarray, *, seed: int,
                   quantile: float = 0.05, boot: int = 200) -> dict:
    """Synthetic notes' distance to the closest train note against held-out real notes'.

    ``share_closer``: share of synthetic notes closer to train than ``quantile`` of held-out real
    notes are (expected ``quantile`` when notes sit no closer than unseen real ones).
    ``attack_auc``: AUC of "closer to train" telling synthetic from held-out (0.5: no sign of
    memorisation; 1: every synthetic note is closer than every real unseen note)."""
    syn, held = np.asarray(synthetic_dcr, float), np.asarray(heldout_dcr, float)
    if len(syn) == 0 or len(held) == 0:
        return {"share_closer": None, "expected_share": quantile, "attack_auc": None,
                "n_synthetic": len(syn), "n_heldout": len(held)}
    cut = float(np.quantile(held, quantile))
    rng = np.random.default_rng(seed)
    shares, aucs = [], []
    for _ in range(boot):
        s = syn[rng.integers(0, len(syn), len(syn))]
        h = held[rng.integers(0, len(held), len(held))]
        c = np.quantile(h, quantile)
        shares.append(float((s < c).mean()))
        aucs.append(rank_auc(-s, -h))
    return {"share_closer": float((syn < cut).mean()), "share_closer_ci": _ci(shares),
            "expected_share": quantile, "heldout_quantile_distance": cut,
            "attack_auc": rank_auc(-syn, -held), "attack_auc_ci": _ci(aucs),
            "median_dcr": float(np.median(syn)), "median_dcr_heldout": float(np.median(held)),
            "n_synthetic": int(len(syn)), "n_heldout": int(len(held))}


def _ci(values: Sequence[float | None]) -> list[float] | None:
    vals = np.asarray([v for v in values if v is not None], float)
    return [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))] if len(vals) else None


@dataclass
class Span:
    text: str
    words: int
    visit_id: str | None


class SpanIndex:
    """Every ``n``-word sequence of the real train notes → the visit it first occurs in."""

    def __init__(self, texts: Sequence[str], visit_ids: Sequence[str], n: int = MIN_SPAN_WORDS):
        if n < 1:
            raise ValueError(f"span length must be at least 1 word, got {n}")
        self.n = n
        self.index: dict[tuple[str, ...], str] = {}
        for text, visit in zip(texts, visit_ids):
            tokens = words(text)
            for i in range(len(tokens) - n + 1):
                self.index.setdefault(tuple(tokens[i:i + n]), str(visit))

    def longest_span(self, text: str) -> Span:
        """The longest run of consecutive matching ``n``-grams, as words, with the source visit
        of its first n-gram; an empty span (0 words) when nothing of ``n`` words is copied."""
        tokens = words(text)
        n = self.n
        best = (0, 0, None)  # (length in words, start, visit)
        i, hits = 0, [self.index.get(tuple(tokens[j:j + n])) for j in range(len(tokens) - n + 1)]
        while i < len(hits):
            if hits[i] is None:
                i += 1
                continue
            j = i
            while j + 1 < len(hits) and hits[j + 1] is not None:
                j += 1
            length = j - i + n
            if length > best[0]:
                best = (length, i, hits[i])
            i = j + 1
        if best[0] == 0:
            return Span("", 0, None)
        return Span(" ".join(tokens[best[1]:best[1] + best[0]]), best[0], best[2])


def pair_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two aligned embedding sets."""
    return (unit_rows(a) * unit_rows(b)).sum(1).astype(np.float64)


def same_code_similarity(codes: Sequence[str], vecs: np.ndarray, reference_codes: Sequence[str],
                         reference_vecs: np.ndarray, *, seed: int) -> float | None:
    """Mean similarity of each note to a random reference note of the same code: how alike two
    different real notes of one disease are, the ceiling beside similarity to the style example
    (None when no code is shared)."""
    rng = np.random.default_rng(seed)
    by_code: dict[str, list[int]] = {}
    for j, code in enumerate(reference_codes):
        by_code.setdefault(str(code), []).append(j)
    left, right = [], []
    for i, code in enumerate(codes):
        if str(code) in by_code:
            left.append(i)
            right.append(int(rng.choice(by_code[str(code)])))
    if not left:
        return None
    return float(pair_similarity(np.asarray(vecs)[left], np.asarray(reference_vecs)[right]).mean())
