"""The learned symptom detector: a few match features, combined by boosted-tree models (one per
fold of train visits, :class:`FoldEnsemble`) trained on RuMedSymptomRec gold pairs of RuMedTop3
*train* visits (never dev or test).

Features of a (note, symptom) pair: the best window's share of the name's content words, the same
share weighted by each word's idf in train complaints, the share found anywhere in the note,
whether the head word is in the best window, the idf of the rarest word missing from it, the number
of content words, the 4-letter stem share (the issue's baseline), a 3-letter prefix share,
rapidfuzz's partial ratio of the name in the note, how often its words occur, whether a name found
only in part is another graph name's (``faithfulness.explained_elsewhere``), two features of the
word association learned from train mark-up (:func:`key_association`: for each content word of a
name, how often a note's stem stood inside the marked span rather than outside it, pooled over the
names with that word; the name's own words and stop words left out, so it only speaks for a
paraphrase such as "лихорадка" for "температура", never for half of the name found elsewhere), and
three features of the variant table learned from train mark-up (:func:`variant_table`: for each
normalised name, the stem sets of the spans that state it in train visits): the best share of one
such set found in the note, the train-weighted share of sets wholly found, and how many spans the
name has. The models are trained once (about 20 s on 2 cores) and cached under the user cache,
keyed by the mark-up's checksum, the feature version and names, the source of the feature code and
the scikit-learn version.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from rapidfuzz import fuzz

from medsyn_utils.evaluate.lexicon import SPELLING_RATIO, Token, is_adjective, is_word, lexicon, \
    similar_stem, tokens

FEATURE_VERSION = "15"  # 5-13: experiments of other branches (their pickles may sit in caches)
# learned from the train mark-up (last in a row; zeroed in the training copy for unseen names)
LEARNED_FEATURES = ("association_best", "association_mean", "variant_best_share",
                    "variant_covered", "variant_spans")
FEATURES = ("window_share", "window_idf_share", "anywhere_share", "head_in_window",
            "missing_idf", "n_words", "stem4_share", "prefix3_share", "partial_ratio",
            "occurrences", "explained_elsewhere") + LEARNED_FEATURES
# the files whose code makes the features and trains the model: part of the cache key
SOURCES = ("detector.py", "faithfulness.py", "lexicon.py", "negation.yaml")
VariantTable = dict[str, dict[frozenset[str], int]]
Association = dict[str, dict[str, float]]  # name's content-word stem -> note stem -> in-span rate
ASSOCIATION_PRIOR = 2.0  # pseudo-count of "outside the span" (a stem seen once in a span: 1/3)


@dataclass
class FoldEnsemble:
    """The fold models of cross-validation, their chances averaged. The cut is chosen on these
    very models' out-of-fold chances, so it fits their calibration (a refit on all train pairs is
    surer of itself than its folds were, and its best cut lies elsewhere)."""

    models: list[Any]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.mean([model.predict_proba(x) for model in self.models], axis=0)


@dataclass
class Detector:
    model: Any
    threshold: float  # probability cut with the best F1 on train pairs
    idf: dict[str, float]
    n_docs: int
    train_report: dict[str, float]
    variants: VariantTable = field(default_factory=dict)  # learned from train mark-up spans
    association: Association = field(default_factory=dict)  # learned from train mark-up spans

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
                     for t in note_tokens if is_word(t) and similar_stem(key, t.stem, SPELLING_RATIO)}
        count = sum(1 for t in note_tokens if is_word(t)
                    and any(similar_stem(key, t.stem, SPELLING_RATIO) for key in keys))
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

    # the feature names and the code that makes the features too: experiments of other branches
    # kept a version number and the names with other features, and their pickles were loaded
    digest = hashlib.sha256(f"{FEATURE_VERSION}|{','.join(FEATURES)}|{sklearn.__version__}".encode())
    digest.update(str(checksums([MARKUP_FILE])).encode())
    for source in SOURCES:
        digest.update(Path(__file__).with_name(source).read_bytes())
    return digest.hexdigest()[:16]


def variant_table(names: Iterable[str], spans: Iterable[frozenset[str]]) -> VariantTable:
    """Normalised symptom name -> {stem set of a marked span: how many train spans have it}.

    A one-word span of a name of several words is kept unless its word is a modifier of the name
    (an adjective or participle: "сух" alone would let "Кожа сухая." state "сухой кашель" and
    "Кашель сухой." state "кожа, сухая"); :func:`variant_features` counts such spans only in
    ``variant_covered``."""
    table: VariantTable = {}
    for name, stems in zip(names, spans):
        if not stems:
            continue
        if len(stems) == 1 and _several_words(name):
            (stem,) = stems
            if any(similar_stem(m, stem, SPELLING_RATIO) for m in _modifiers(name)):
                continue
        counts = table.setdefault(name.strip().lower(), {})
        counts[stems] = counts.get(stems, 0) + 1
    return table


@lru_cache(maxsize=4096)
def _modifiers(name: str) -> frozenset[str]:
    """Stems of the name's adjectives and participles."""
    return frozenset(t.stem for t in tokens(name) if is_word(t) and is_adjective(t.text))


def _several_words(name: str) -> bool:
    return len(name.replace(",", " ").split()) > 1


def variant_features(table: VariantTable, name: str, note_stems: set[str]) -> list[float]:
    """Best share of one span's stems found in the note (spans of one word of a name of several
    left out: one word would be all of it), the train-weighted share of spans wholly found (every
    span: "припухлость" alone states "пастозность лица" in 18 train visits), and log(1 + spans)
    of the former; zeros for a name the train mark-up never states."""
    sets = table.get(name.strip().lower())
    if not sets:
        return [0.0, 0.0, 0.0]
    several = _several_words(name)
    whole = {stems: c for stems, c in sets.items() if len(stems) > 1 or not several}
    best = max((len(stems & note_stems) / len(stems) for stems in whole), default=0.0)
    covered = sum(c for stems, c in sets.items() if stems <= note_stems) / sum(sets.values())
    return [best, covered, math.log1p(sum(whole.values()))]


def _others(keys_list: Iterable[Iterable[str]], note_stems: Iterable[str]) -> set[str]:
    """The note's stems that are neither stop words nor a word of the name (any variant)."""
    keys = {k for keys in keys_list for k in keys}
    stop = lexicon().stopwords
    return {s for s in note_stems
            if s not in stop and not any(similar_stem(k, s, SPELLING_RATIO) for k in keys)}


def key_association(keys_lists: Iterable[Iterable[Iterable[str]]], spans: Iterable[frozenset[str]],
                    note_stems: Iterable[Iterable[str]]) -> Association:
    """For each content-word stem ``k`` of the names of positive train pairs and each other stem
    ``s`` of their notes: (times ``s`` was inside the marked span) / (times in the note + prior),
    pooled over the names sharing ``k``. The name's own words are left out: they are the match
    features' business, and counted here "кожа" of "Кожа чистая" spoke for "кожа, сухая"."""
    inside: dict[str, Counter[str]] = {}
    seen: dict[str, Counter[str]] = {}
    for keys_list, span, stems in zip(keys_lists, spans, note_stems):
        keys_list = [tuple(keys) for keys in keys_list]
        others = _others(keys_list, stems)
        for key in {k for keys in keys_list for k in keys}:
            seen.setdefault(key, Counter()).update(others)
            inside.setdefault(key, Counter()).update(others & span)
    return {k: {s: c / (seen[k][s] + ASSOCIATION_PRIOR) for s, c in found.items()}
            for k, found in inside.items() if found}


def association_features(table: Association, keys_list: Iterable[Iterable[str]],
                         note_stems: Iterable[str]) -> list[float]:
    """Per content word of the name, its best-associated other stem of the note: the best over
    the words, and the best variant's mean over its words; zeros where nothing is associated."""
    keys_list = [tuple(keys) for keys in keys_list]
    others = _others(keys_list, note_stems)
    best, mean = 0.0, 0.0
    for keys in keys_list:
        per = [max((row.get(s, 0.0) for s in others), default=0.0)
               for row in (table.get(k, {}) for k in keys)]
        if per:
            best, mean = max(best, max(per)), max(mean, float(np.mean(per)))
    return [best, mean]
