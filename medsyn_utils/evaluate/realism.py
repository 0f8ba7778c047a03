"""Realism of a set of notes against real notes: MAUVE, classifier two-sample tests, Fréchet
distance on embeddings, and shape divergences (length, sentences, words per sentence, vocabulary).

Every function compares a sample ``q`` (synthetic notes, or real held-out notes for the ceiling)
with a reference ``p`` (real train notes). All divergences are finite (Jensen–Shannon, base 2,
in [0, 1]) — never a KL that is infinite when vocabularies differ.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from collections import Counter
from collections.abc import Sequence

import numpy as np

WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)
SENTENCE_END = re.compile(r"[.!?…]+(?:\s|$)")


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words (Cyrillic kept; digits and punctuation dropped)."""
    return WORD.findall(str(text).lower())


def sentence_count(text: str) -> int:
    """Sentences by end punctuation; a text without any counts as one sentence."""
    text = str(text).strip()
    if not text:
        return 0
    ends = len(SENTENCE_END.findall(text))
    return max(1, ends + (0 if re.search(r"[.!?…]\s*$", text) else 1))


@contextmanager
def _quiet_stderr():
    """Silence writes to file descriptor 2 (C++ libraries) for the duration of the block."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def mauve_scores(p_features: np.ndarray, q_features: np.ndarray, *, seeds: Sequence[int],
                 num_buckets: int | str = "auto") -> dict:
    """MAUVE on precomputed features, once per k-means seed: mean, spread (std) and the values.

    ``num_buckets="auto"`` is MAUVE's own rule (n / 10 clusters)."""
    import mauve

    p = np.asarray(p_features, dtype=np.float32)
    q = np.asarray(q_features, dtype=np.float32)
    values = []
    for seed in seeds:
        with _quiet_stderr():  # faiss prints a warning per k-means run on small sets
            out = mauve.compute_mauve(p_features=p, q_features=q, num_buckets=num_buckets,
                                      seed=int(seed), kmeans_num_redo=1, kmeans_max_iter=100,
                                      verbose=False, device_id=-1)
        values.append(float(out.mauve))
    arr = np.asarray(values)
    return {"mean": float(arr.mean()), "spread": float(arr.std()), "values": values,
            "seeds": [int(s) for s in seeds]}


def _cv_auc(features, labels: np.ndarray, make_model, *, folds: int, seed: int) -> dict:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = int(min(folds, np.bincount(labels).min()))
    if folds < 2:
        return {"mean": None, "spread": None, "folds": folds}
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(make_model(), features, labels, cv=cv, scoring="roc_auc")
    return {"mean": float(scores.mean()), "spread": float(scores.std()), "folds": folds}


def two_sample_auc_embeddings(p_features: np.ndarray, q_features: np.ndarray, *, seed: int,
                              folds: int = 5) -> dict:
    """Cross-validated AUC of a logistic regression telling ``q`` from ``p`` (0.5: indistinguishable)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([p_features, q_features])
    y = np.r_[np.zeros(len(p_features), int), np.ones(len(q_features), int)]
    return _cv_auc(x, y, lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500)),
                   folds=folds, seed=seed)


def two_sample_auc_chars(p_texts: Sequence[str], q_texts: Sequence[str], *, seed: int,
                         folds: int = 5) -> dict:
    """The same test on hashed character 2–4-grams with TF-IDF weights (a ridge classifier: on
    these sparse features it ranks like a logistic regression at a fraction of the time).

    The weights are fitted once on the pooled texts without their labels (no label leaks into a
    fold; it saves refitting a vocabulary per fold)."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.linear_model import RidgeClassifier

    texts = [str(t) for t in [*p_texts, *q_texts]]
    counts = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2 ** 16,
                               alternate_sign=False, norm=None).transform(texts)
    x = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    y = np.r_[np.zeros(len(p_texts), int), np.ones(len(q_texts), int)]
    return _cv_auc(x, y, lambda: RidgeClassifier(alpha=1.0, solver="sparse_cg"), folds=folds, seed=seed)


def _sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(p_features: np.ndarray, q_features: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (FID's formula).

    tr(sqrt(Σp Σq)) is computed as tr(sqrt(Σp^½ Σq Σp^½)), symmetric and PSD, so it is real."""
    p = np.asarray(p_features, dtype=np.float64)
    q = np.asarray(q_features, dtype=np.float64)
    mu_p, mu_q = p.mean(0), q.mean(0)
    cov_p = np.cov(p, rowvar=False)
    cov_q = np.cov(q, rowvar=False)
    root_p = _sqrtm_psd(cov_p)
    cross = _sqrtm_psd(root_p @ cov_q @ root_p)
    value = float(((mu_p - mu_q) ** 2).sum() + np.trace(cov_p) + np.trace(cov_q) - 2 * np.trace(cross))
    return max(value, 0.0)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of two non-negative count vectors."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("Jensen–Shannon divergence needs two non-empty histograms")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / m[mask])).sum())

    return float(min(max((kl(p) + kl(q)) / 2, 0.0), 1.0))


def shape_table(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-text characters, sentences and words per sentence."""
    chars = np.array([len(str(t)) for t in texts], dtype=float)
    sentences = np.array([sentence_count(t) for t in texts], dtype=float)
    n_words = np.array([len(words(t)) for t in texts], dtype=float)
    return {"characters": chars, "sentences": sentences,
            "words_per_sentence": n_words / np.maximum(sentences, 1)}


def histogram_js(p_values: np.ndarray, q_values: np.ndarray, bins: int = 20) -> float:
    """JS divergence of two samples on shared bins (quantiles of the pooled sample)."""
    pooled = np.r_[p_values, q_values]
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0
    edges[0], edges[-1] = -np.inf, np.inf
    return js_divergence(np.histogram(p_values, edges)[0], np.histogram(q_values, edges)[0])


def vocabulary_js(p_texts: Sequence[str], q_texts: Sequence[str]) -> float:
    """JS divergence of the two word-frequency distributions (union vocabulary; finite)."""
    p_counts = Counter(w for t in p_texts for w in words(t))
    q_counts = Counter(w for t in q_texts for w in words(t))
    vocab = sorted(set(p_counts) | set(q_counts))
    if not vocab:
        return 0.0
    return js_divergence(np.array([p_counts[w] for w in vocab]), np.array([q_counts[w] for w in vocab]))


def shape_divergences(p_texts: Sequence[str], q_texts: Sequence[str]) -> dict[str, float]:
    """Length, sentences, words per sentence and vocabulary of ``q`` against ``p``, as JS divergences."""
    p_shape, q_shape = shape_table(p_texts), shape_table(q_texts)
    out = {name: histogram_js(p_shape[name], q_shape[name]) for name in p_shape}
    out["vocabulary"] = vocabulary_js(p_texts, q_texts)
    return out


def realism_pair(p_texts: Sequence[str], p_vecs: np.ndarray, q_texts: Sequence[str],
                 q_vecs: np.ndarray, *, seed: int, mauve_seeds: Sequence[int], boot: int = 5) -> dict:
    """Every realism measure of ``q`` against ``p`` (MAUVE over ``seed + s`` for ``s`` in
    ``mauve_seeds``; the AUCs' spread over folds; the Fréchet distance's and the shape
    divergences' spread (std) over ``boot`` bootstrap resamples of both sets)."""
    p_texts, q_texts = list(p_texts), list(q_texts)
    rng = np.random.default_rng(seed)
    frechet_draws, shape_draws = [], []
    for _ in range(boot):
        pi = rng.integers(0, len(p_texts), len(p_texts))
        qi = rng.integers(0, len(q_texts), len(q_texts))
        frechet_draws.append(frechet_distance(p_vecs[pi], q_vecs[qi]))
        shape_draws.append(shape_divergences([p_texts[i] for i in pi], [q_texts[i] for i in qi]))
    shape = shape_divergences(p_texts, q_texts)
    return {
        "mauve": mauve_scores(p_vecs, q_vecs, seeds=[seed + s for s in mauve_seeds]),
        "auc_embeddings": two_sample_auc_embeddings(p_vecs, q_vecs, seed=seed),
        "auc_char_ngrams": two_sample_auc_chars(p_texts, q_texts, seed=seed),
        "frechet": frechet_distance(p_vecs, q_vecs),
        "frechet_spread": float(np.std(frechet_draws)) if boot > 1 else None,
        "shape": shape,
        "shape_spread": {name: float(np.std([d[name] for d in shape_draws])) if boot > 1 else None
                         for name in shape},
    }
