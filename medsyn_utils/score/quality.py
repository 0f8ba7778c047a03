"""Per-note checks a careful reader adds to BERTScore: length, diversity, copying, leaks, language.

BERTScore says whether a note covers its symptoms and resembles its style example; it does not
say whether the model simply copied the real example (a privacy problem: the examples are real
patients' notes), named the diagnosis the prompt told it not to name, copied de-identification
placeholders such as ``*ДАТА*``, or answered in another language. These functions do, on plain
strings, so they are cheap and testable by hand.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from difflib import SequenceMatcher
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import ParameterError

WORD = re.compile(r"\w+", re.UNICODE)
LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
CYRILLIC = re.compile(r"[\u0400-\u04FF]")
# De-identification marks found in RuMedPrime notes (*ДАТА*, *МО*, *СТРАНА*, ...), and any other
# all-capital Cyrillic word between single asterisks (markdown **bold** does not count).
KNOWN_PLACEHOLDERS = ("ДАТА", "МО", "СТРАНА", "РЕГИОН", "ГОРОД", "ДОЛЖНОСТЬ", "ИМЯ", "РАЙОН", "ФИО")
PLACEHOLDER = re.compile(
    r"(?<!\*)\*(?:(?i:" + "|".join(KNOWN_PLACEHOLDERS) + r")|[А-ЯЁ]{2,})\*(?!\*)")

COPY_NGRAM = 8
DEFAULT_COPY_THRESHOLD = 0.2      # share of a note's word 8-grams found in its example
DEFAULT_SPAN_THRESHOLD = 20       # longest copied run of words
DEFAULT_CYRILLIC_THRESHOLD = 0.5  # below this share of Cyrillic letters a note is "non-Russian"

# Words of ICD-10 names that say nothing about the disease itself.
_NAME_STOPWORDS = frozenset("""
и или в во на по при с со без от до для из за к о об не неуточненный неуточненная неуточненное
неуточненные неуточнённый неуточнённая неуточнённое неуточнённые другие другой другая другое
уточненные уточненный уточнённые classified классифицированные рубриках других формы форма
вызванный вызванная вызванные вызванное вследствие связанный связанные типа тип локализации
""".split())


def words(text: str | None) -> list[str]:
    """Lower-cased word tokens (letters and digits; ``ё`` folded into ``е``)."""
    if not isinstance(text, str):
        return []
    return [w.replace("ё", "е") for w in WORD.findall(text.lower())]


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Iterable[str | None], n: int) -> float:
    """Distinct-n over a set of notes: unique word n-grams / all word n-grams (Li et al., 2016).

    A low value means the notes repeat each other; NaN when the set has no n-gram at all.
    """
    if n < 1:
        raise ParameterError(f"distinct-n needs n >= 1, got {n}")
    total, unique = 0, set()
    for text in texts:
        grams = _ngrams(words(text), n)
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else math.nan


def copied_ngram_share(note: str | None, example: str | None, n: int = COPY_NGRAM) -> float:
    """Share of the note's word n-grams (default 8) that also occur in its style example.

    NaN when there is no example or the note is shorter than n words.
    """
    if not isinstance(example, str) or not example.strip():
        return math.nan
    grams = _ngrams(words(note), n)
    if not grams:
        return math.nan
    source = set(_ngrams(words(example), n))
    return sum(g in source for g in grams) / len(grams)


def longest_copied_span(note: str | None, example: str | None) -> float:
    """Length in words of the longest run of words the note shares with its example (NaN: no example)."""
    if not isinstance(example, str) or not example.strip():
        return math.nan
    a, b = words(note), words(example)
    if not a or not b:
        return 0.0
    match = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return float(match.size)


def _stem(word: str) -> str:
    """A crude Russian stem: drop up to three final letters (inflection), keep at least four."""
    return word[:max(4, len(word) - 3)] if len(word) > 4 else word


def diagnosis_name_variants(name: str | None) -> list[list[str]]:
    """Stems of the content words of each variant of an ICD-10 name.

    ``"Острый назофарингит [насморк]"`` → ``[["остр", "назофари"], ["насм"]]``: the main name
    (text before the first comma, without bracketed parts) and each bracketed alternative.
    """
    if not isinstance(name, str) or not name.strip():
        return []
    alternatives = re.findall(r"[\[(]([^\])]+)[\])]", name)
    main = re.sub(r"[\[(][^\])]*[\])]", " ", name).split(",")[0]
    variants = []
    for part in [main, *alternatives]:
        stems = [_stem(w) for w in words(part) if w not in _NAME_STOPWORDS and len(w) > 2
                 and not w.isdigit()]
        if stems:
            variants.append(stems)
    return variants


def names_diagnosis(note: str | None, name: str | None) -> float:
    """1.0 when the note names the diagnosis (every content word of a name variant appears,
    up to inflection), 0.0 when not, NaN when there is no name to look for."""
    variants = diagnosis_name_variants(name)
    if not variants:
        return math.nan
    note_words = words(note)
    for stems in variants:
        if all(any(w.startswith(s) for w in note_words) for s in stems):
            return 1.0
    return 0.0


def placeholders(text: str | None) -> list[str]:
    """De-identification placeholders (``*ДАТА*``, ``*ГОРОД*`` …) found in a text."""
    return PLACEHOLDER.findall(text) if isinstance(text, str) else []


def cyrillic_share(text: str | None) -> float:
    """Share of the letters that are Cyrillic (NaN when the text has no letter)."""
    if not isinstance(text, str):
        return math.nan
    letters = LETTER.findall(text)
    if not letters:
        return math.nan
    return sum(bool(CYRILLIC.match(c)) for c in letters) / len(letters)


def note_metrics(note: str | None, example: str | None = None, diagnosis_name: str | None = None, *,
                 count_tokens: Callable[[str], int] | None = None,
                 copy_threshold: float = DEFAULT_COPY_THRESHOLD,
                 span_threshold: int = DEFAULT_SPAN_THRESHOLD,
                 cyrillic_threshold: float = DEFAULT_CYRILLIC_THRESHOLD) -> dict[str, float | bool | int]:
    """Every per-note metric of this module for one note."""
    text = note if isinstance(note, str) else ""
    share = copied_ngram_share(text, example)
    span = longest_copied_span(text, example)
    cyr = cyrillic_share(text)
    found = placeholders(text)
    return {
        "note_words": len(words(text)),
        "note_tokens": count_tokens(text) if count_tokens else math.nan,
        "copied_8gram_share": share,
        "longest_copied_span": span,
        "memorised": bool((not math.isnan(share) and share >= copy_threshold)
                          or (not math.isnan(span) and span >= span_threshold)),
        "names_diagnosis": names_diagnosis(text, diagnosis_name),
        "placeholders_copied": len(found),
        "cyrillic_share": cyr,
        "non_russian": bool(text.strip()) and (math.isnan(cyr) or cyr < cyrillic_threshold),
    }


QUALITY_COLUMNS = ("note_words", "note_tokens", "copied_8gram_share", "longest_copied_span",
                   "memorised", "names_diagnosis", "placeholders_copied", "cyrillic_share",
                   "non_russian")


def quality_table(notes: Sequence[str | None], examples: Sequence[str | None] | None = None,
                  diagnosis_names: Sequence[str | None] | None = None, **options) -> pd.DataFrame:
    """:func:`note_metrics` for many notes, one row each (columns :data:`QUALITY_COLUMNS`)."""
    n = len(notes)
    examples = list(examples) if examples is not None else [None] * n
    diagnosis_names = list(diagnosis_names) if diagnosis_names is not None else [None] * n
    if len(examples) != n or len(diagnosis_names) != n:
        raise ParameterError(f"quality_table got {n} notes, {len(examples)} examples and "
                             f"{len(diagnosis_names)} diagnosis names: pass one of each per note")
    rows = [note_metrics(a, b, c, **options) for a, b, c in zip(notes, examples, diagnosis_names)]
    return pd.DataFrame(rows, columns=list(QUALITY_COLUMNS))


def set_metrics(notes: Sequence[str | None]) -> dict[str, float]:
    """Numbers about the set as a whole: distinct-1/2 and the mean length in words."""
    lengths = [len(words(t)) for t in notes]
    return {"distinct_1": distinct_n(notes, 1), "distinct_2": distinct_n(notes, 2),
            "mean_words": float(np.mean(lengths)) if lengths else math.nan}


def placeholder_counts(notes: Iterable[str | None]) -> Counter:
    """How often each placeholder occurs across notes (what leaked, at a glance)."""
    counts: Counter = Counter()
    for text in notes:
        counts.update(p.upper() for p in placeholders(text))
    return counts
