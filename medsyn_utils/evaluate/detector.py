"""The learned symptom detector: a few match features, combined by a small boosted-tree model
trained on RuMedSymptomRec gold pairs of RuMedTop3 *train* visits (never dev or test).

Features of a (note, symptom) pair: the best window's share of the name's content words, the same
share weighted by each word's idf in train complaints, the share found anywhere in the note,
whether the head word is in the best window, the idf of the rarest word missing from it, the
number of content words, the 4-letter stem share (the issue's baseline), a 3-letter prefix share,
rapidfuzz's partial ratio of the name in the note, how often its words occur, and three features
of the variant table learned from train mark-up (:func:`variant_table`: for each normalised name, the
stem sets of the spans that state it in train visits): the best share of one such set found in the
note, the train-weighted share of sets wholly found, and how many spans the name has. The model is
trained once (about half a minute on 2 cores) and cached under the user cache, keyed by the
mark-up's checksum, the feature version and names and the scikit-learn version.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import numpy as np
from rapidfuzz import fuzz

from medsyn_utils.evaluate.lexicon import Token, is_word, similar_stem, tokens

FEATURE_VERSION = "4"
FEATURES = ("window_share", "window_idf_share", "anywhere_share", "head_in_window",
            "missing_idf", "n_words", "stem4_share", "prefix3_share", "partial_ratio",
            "occurrences", "variant_best_share", "variant_covered", "variant_spans")
VariantTable = dict[str, dict[frozenset[str], int]]


@dataclass
class Detector:
    model: Any
    threshold: float  # probability cut with the best F1 on train pairs
    idf: dict[str, float]
    n_docs: int
    train_report: dict[str, float]
    variants: VariantTable = field(default_factory=dict)  # learned from train mark-up spans

    def weight(self, stem: str) -> float:
        return self.idf.get(stem, math.log(self.n_docs + 1))


@lru_cache(maxsize=1)
def idf_table() -> tuple[dict[str, float], int]:
    """idf of each stem over RuMedTop3 train complaints."""
    from medsyn_utils.core.corpus import load_rumedtop3

    texts = load_rumedtop3("train")["text"].astype(str)
    df: Counter[str] = Counter()
    for text in texts:
        df.update({t.stem for t in tokens(text) if is_word(t)})
    n = len(texts)
    return {s: math.log((n + 1) / (1 + c)) for s, c in df.items()}, n


def features(symptom: str, keys_list: tuple[tuple[str, ...], ...], note: str,
             note_tokens: list[Token], hits: list[list[Any]], weight) -> np.ndarray:
    """The feature vector of one pair (``hits[i]``: the windows of variant ``i``)."""
    low = note.lower()
    best = (0.0, 0.0, 0.0, 0.0, 0.0)
    occurrences = 0.0
    for keys, windows in zip(keys_list, hits):
        weights = [weight(k) for k in keys]
        found_any = {k for k, key in enumerate(keys)
                     for t in note_tokens if is_word(t) and similar_stem(key, t.stem, 88.0)}
        count = sum(1 for t in note_tokens if is_word(t)
                    and any(similar_stem(key, t.stem, 88.0) for key in keys))
        occurrences = max(occurrences, count / len(keys))
        if not windows:
            best = max(best, (0.0, 0.0, len(found_any) / len(keys), 0.0, max(weights)))
        for hit in windows:
            found = hit.found
            missing = max([weights[k] for k in range(len(keys)) if k not in found], default=0.0)
            best = max(best, (len(found) / len(keys), sum(weights[k] for k in found) / sum(weights),
                              len(found_any) / len(keys), float(0 in found), missing))
    words = [w for w in symptom.lower().replace(",", " ").split() if len(w) >= 3]
    stem4 = sum(w[:4] in low for w in words) / len(words) if words else 0.0
    prefix3 = sum(w[:3] in low for w in words) / len(words) if words else 0.0
    return np.array([*best, float(len(keys_list[0])), stem4, prefix3,
                     fuzz.partial_ratio(symptom.lower(), low) / 100.0, occurrences], float)


def cache_key() -> str:
    import sklearn

    from medsyn_utils.core.corpus import MARKUP_FILE
    from medsyn_utils.core.data import checksums

    # the feature names too: an experiment that kept the version but changed the features must
    # not load another's pickle
    digest = hashlib.sha256(f"{FEATURE_VERSION}|{','.join(FEATURES)}|{sklearn.__version__}".encode())
    digest.update(str(checksums([MARKUP_FILE])).encode())
    return digest.hexdigest()[:16]


def variant_table(names: Iterable[str], spans: Iterable[frozenset[str]]) -> VariantTable:
    """Normalised symptom name -> {stem set of a marked span: how many train spans have it}.
    A one-word span of a name of several words is left out: "сух" alone would let "кашель сухой"
    state "кожа, сухая"."""
    table: VariantTable = {}
    for name, stems in zip(names, spans):
        if len(stems) > 1 or (stems and len(name.replace(",", " ").split()) == 1):
            counts = table.setdefault(name.strip().lower(), {})
            counts[stems] = counts.get(stems, 0) + 1
    return table


def variant_features(table: VariantTable, name: str, note_stems: set[str]) -> list[float]:
    """Best share of one span's stems found in the note, the span-weighted share of spans wholly
    found, and log(1 + spans) of the name; zeros for a name the train mark-up never states."""
    sets = table.get(name.strip().lower())
    if not sets:
        return [0.0, 0.0, 0.0]
    total = sum(sets.values())
    best = max(len(stems & note_stems) / len(stems) for stems in sets)
    covered = sum(c for stems, c in sets.items() if stems <= note_stems) / total
    return [best, covered, math.log1p(total)]
