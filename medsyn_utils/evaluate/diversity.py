"""Diversity of a set of notes: distinct-n, self-BLEU, the Vendi score on embeddings and
near-duplicate clusters by MinHash-LSH on character shingles.

distinct-n and self-BLEU depend on how many notes they see, so callers compare them at equal
sizes (the corpus summary draws the same number of real notes for the ceiling).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from medsyn_utils.evaluate.realism import words


NEAR_DUPLICATE_THRESHOLD = 0.7  # Jaccard of character shingles above which two notes are grouped

def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Distinct word n-grams over all n-grams of the set (None when there are none)."""
    total, seen = 0, set()
    for text in texts:
        grams = ngrams(words(text), n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else None


def sentence_bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """BLEU-4 of one tokenised hypothesis against several references (clipped counts, brevity
    penalty from the closest reference length, +1 smoothing of n > 1 precisions)."""
    if not hypothesis or not references:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_n + 1):
        hyp = Counter(ngrams(hypothesis, n))
        total = sum(hyp.values())
        if total == 0:
            return 0.0
        best: Counter = Counter()
        for ref in references:
            for gram, count in Counter(ngrams(ref, n)).items():
                if count > best[gram]:
                    best[gram] = count
        matched = sum(min(count, best[gram]) for gram, count in hyp.items())
        if n == 1:
            if matched == 0:
                return 0.0
            log_precision += math.log(matched / total)
        else:
            log_precision += math.log((matched + 1) / (total + 1))
    length = len(hypothesis)
    closest = min((abs(len(r) - length), len(r)) for r in references)[1]
    brevity = 1.0 if length > closest else math.exp(1 - closest / max(length, 1))
    return brevity * math.exp(log_precision / max_n)


def self_bleu(texts: Sequence[str], *, sample: int, seed: int, max_n: int = 4) -> dict:
    """Mean BLEU of each note of a seeded subsample against the other notes of that subsample
    (the note itself excluded). High: notes repeat each other.

    Equal to averaging :func:`sentence_bleu` over the subsample, but the clipping count of an
    n-gram among "all notes but this one" comes from its top two counts over the subsample, so the
    cost is linear in the subsample's n-grams rather than quadratic."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(texts), size=min(sample, len(texts)), replace=False) if len(texts) else []
    tokens = [words(texts[i]) for i in pick]
    if len(tokens) < 2:
        return {"mean": None, "n": len(tokens)}
    counts = [[Counter(ngrams(t, n)) for n in range(1, max_n + 1)] for t in tokens]
    top: list[dict] = []
    for n in range(max_n):
        best: dict[tuple[str, ...], list] = {}
        for owner, per_n in enumerate(counts):
            for gram, count in per_n[n].items():
                entry = best.setdefault(gram, [0, -1, 0])  # top count, its owner, second count
                if count > entry[0]:
                    entry[2], entry[0], entry[1] = entry[0], count, owner
                elif count > entry[2]:
                    entry[2] = count
        top.append(best)
    lengths = np.array([len(t) for t in tokens])
    scores = []
    for i, hyp in enumerate(tokens):
        if not hyp:
            scores.append(0.0)
            continue
        log_precision, zero = 0.0, False
        for n in range(max_n):
            total = sum(counts[i][n].values())
            if total == 0:
                zero = True
                break
            matched = 0
            for gram, count in counts[i][n].items():
                first, owner, second = top[n][gram]
                matched += min(count, second if owner == i else first)
            if n == 0:
                if matched == 0:
                    zero = True
                    break
                log_precision += math.log(matched / total)
            else:
                log_precision += math.log((matched + 1) / (total + 1))
        if zero:
            scores.append(0.0)
            continue
        others = np.delete(lengths, i)
        closest = int(others[np.lexsort((others, np.abs(others - len(hyp))))[0]])
        brevity = 1.0 if len(hyp) > closest else math.exp(1 - closest / max(len(hyp), 1))
        scores.append(brevity * math.exp(log_precision / max_n))
    return {"mean": float(np.mean(scores)), "n": len(tokens)}


def vendi_score(features: np.ndarray) -> float:
    """Vendi score with the cosine kernel: exp(entropy of the eigenvalues of K / n).

    The non-zero eigenvalues of X Xᵀ / n equal those of Xᵀ X / n, so a d × d matrix suffices.
    1 = all notes the same; n = all orthogonal."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("Vendi score needs at least one embedding")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    values = np.linalg.eigvalsh(x.T @ x / len(x))
    values = values[values > 1e-12]
    values = values / values.sum()
    return float(np.exp(-(values * np.log(values)).sum()))


def shingles(text: str, k: int = 5) -> set[str]:
    """Character k-shingles of the lower-cased text with runs of whitespace folded to one space."""
    clean = re.sub(r"\s+", " ", str(text).lower()).strip()
    if len(clean) <= k:
        return {clean} if clean else set()
    return {clean[i:i + k] for i in range(len(clean) - k + 1)}


def near_duplicate_clusters(texts: Sequence[str], *, threshold: float = NEAR_DUPLICATE_THRESHOLD, num_perm: int = 128,
                            k: int = 5, seed: int = 0) -> list[list[int]]:
    """Groups of notes whose character-shingle Jaccard similarity is at least ``threshold``.

    MinHash-LSH proposes candidate pairs; each pair is kept only when the exact Jaccard of the
    shingle sets reaches the threshold; clusters are the connected components (size ≥ 2),
    largest first, as positions into ``texts``."""
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(t, k) for t in texts]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = MinHash.bulk([[s.encode("utf-8") for s in shingle_set] for shingle_set in sets],
                          num_perm=num_perm, seed=seed)
    for i, (shingle_set, minhash) in enumerate(zip(sets, hashes)):
        if shingle_set:
            lsh.insert(str(i), minhash)
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, minhash in enumerate(hashes):
        if not sets[i]:
            continue
        for key in lsh.query(minhash):
            j = int(key)
            if j <= i:
                continue
            union = len(sets[i] | sets[j])
            if union and len(sets[i] & sets[j]) / union >= threshold:
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(texts)):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def shared_word_trigrams(texts: Sequence[str], limit: int = 30) -> list[str]:
    """The word 3-grams every text of a cluster shares, in the first text's order: why they group."""
    sets = [set(ngrams(words(t), 3)) for t in texts]
    common = set.intersection(*sets) if sets else set()
    out, seen = [], set()
    for gram in ngrams(words(texts[0]), 3) if texts else []:
        if gram in common and gram not in seen:
            seen.add(gram)
            out.append(" ".join(gram))
    return out[:limit]


def diversity_summary(texts: Sequence[str], vecs: np.ndarray, size: int, *, seed: int,
                      threshold: float, bleu_sample: int, reps: int = 3) -> dict:
    """Every diversity measure on a seeded subsample of ``size`` notes (sizes matter: compare
    sets at equal sizes), with its spread (std) over ``reps`` seeded subsamples of 80 % of it."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(texts), size=min(size, len(texts)), replace=False))
    out = _diversity_once([texts[i] for i in pick], np.asarray(vecs)[pick], seed, threshold, bleu_sample)
    sub = max(2, int(round(0.8 * len(pick))))
    draws = []
    for rep in range(reps if sub < len(pick) else 0):
        part = np.sort(rng.choice(pick, size=sub, replace=False))
        draws.append(_diversity_once([texts[i] for i in part], np.asarray(vecs)[part], seed + rep + 1,
                                     threshold, bleu_sample))
    out["spread"] = {name: (float(np.std([d[name] for d in draws]))
                            if draws and all(d[name] is not None for d in draws) else None)
                     for name in out}
    out["spread_subsample"] = sub if draws else None
    out["n"] = len(pick)
    return out


def _diversity_once(chosen: list[str], vecs: np.ndarray, seed: int, threshold: float,
                    bleu_sample: int) -> dict:
    clusters = near_duplicate_clusters(chosen, threshold=threshold, seed=seed)
    return {
        **{f"distinct_{n}": distinct_n(chosen, n) for n in (1, 2, 3)},
        "self_bleu": self_bleu(chosen, sample=bleu_sample, seed=seed)["mean"],
        "vendi": vendi_score(vecs),
        "near_duplicate_clusters": len(clusters),
        "near_duplicate_share": sum(len(c) for c in clusters) / max(len(chosen), 1),
    }
