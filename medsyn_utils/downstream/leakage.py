"""Leakage guard: synthetic training notes must not carry dev/test text, and it says what it checked.

Checks, each run where the table allows it and recorded as ran, or not run and why:

* ``example_visit_id``: the style example is a dev/test visit (tables made by this kit);
* ``anamnesis text``: the style example equals a dev/test text, or starts with a long one;
* ``response n-grams`` and ``prompt n-grams``: the note (or its prompt) shares a word
  :data:`LEAKAGE_NGRAM`-gram with a dev/test note, **not counting n-grams that also stand in a
  train note** (RuMedTop3 repeats a patient's history across visits, so train text legitimately
  recurs in dev/test). This is the check a text-only table such as the published CSV gets;
* ``response equals dev/test``: the note is a dev/test text verbatim.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

LEAKAGE_NGRAM = 8
_WORD = re.compile(r"\w+")


def normalise_text(text: Any) -> str:
    """Lower case, whitespace collapsed; non-text → ``""``."""
    if not isinstance(text, str):
        return ""
    return re.sub(r"\s+", " ", text).strip().lower()


def word_ngrams(text: Any, n: int = LEAKAGE_NGRAM) -> set[str]:
    """The word ``n``-grams of a text (lower case, punctuation ignored)."""
    words = _WORD.findall(normalise_text(text))
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass
class HeldOut:
    """Dev/test visits the synthetic training data must not draw on (ids, texts, n-grams)."""

    ids: set[str]
    texts: set[str]
    prefixes: dict[str, list[str]] = field(default_factory=dict)  # first 5 words → long texts
    ngrams: set[str] = field(default_factory=set)  # dev/test n-grams absent from every train text

    @classmethod
    def from_frames(cls, visits: pd.DataFrame, extra_texts: Iterable[str] = (),
                    train_texts: Iterable[str] = ()) -> "HeldOut":
        """From dev/test visits (``idx``, ``text``), other held-out texts (e.g. full dev notes)
        and the train texts whose n-grams do not count as leakage."""
        raw = list(visits["text"]) + list(extra_texts)
        texts = {normalise_text(t) for t in raw}
        texts.discard("")
        prefixes: dict[str, list[str]] = {}
        for text in texts:
            words = text.split()
            if len(words) >= 5:  # short complaints ("жалоб нет") are too generic to match
                prefixes.setdefault(" ".join(words[:5]), []).append(text)
        ngrams: set[str] = set()
        for text in raw:
            ngrams |= word_ngrams(text)
        for text in train_texts:
            ngrams -= word_ngrams(text)
        return cls(ids={str(i) for i in visits["idx"]}, texts=texts, prefixes=prefixes,
                   ngrams=ngrams)

    def matches(self, text: Any) -> bool:
        """Whether a style example equals a held-out text or starts with a long held-out text."""
        norm = normalise_text(text)
        if not norm:
            return False
        if norm in self.texts:
            return True
        candidates = self.prefixes.get(" ".join(norm.split()[:5]), ())
        return any(norm.startswith(c) for c in candidates)

    def overlaps(self, text: Any) -> bool:
        """Whether a text shares a dev/test-only word n-gram."""
        return bool(self.ngrams) and not word_ngrams(text).isdisjoint(self.ngrams)


def held_out_visits() -> HeldOut:
    """Dev and test RuMedTop3 visits plus the full dev notes; train complaints and full notes
    as the text that does not count.

    Limitation: the mirror has no full notes for test visits, so a text that holds only the
    anamnesis part of a *test* visit cannot be recognised; tables from this kit carry
    ``example_visit_id`` and are checked by id as well.
    """
    from medsyn_utils.core.corpus import load_full_notes, load_rumedtop3

    visits = load_rumedtop3(("dev", "test"))
    notes = load_full_notes("dev")
    extra = list(notes["full_text"]) + [a for a in notes["anamnesis"] if len(str(a).split()) >= 5]
    train = list(load_rumedtop3("train")["text"]) + list(load_full_notes("train")["full_text"])
    return HeldOut.from_frames(visits, extra, train_texts=train)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_leakage(work: pd.DataFrame, held_out: HeldOut) -> tuple[pd.Series, dict[str, Any]]:
    """Rows of ``work`` (with ``text``) that draw on dev/test text, and what was checked.

    Returns the boolean mask of leaked rows and a report that only claims what ran: per check
    ``"ran"`` (or ``"ran on N of M rows"``) or why it could not (``"not run: column … empty"``,
    ``"not run: no … column"``), the rows each could check, the lists ``ran`` /
    ``could_not_run``, and per check that ran the rows it flagged (a row may be flagged by
    several).
    """
    leaked = pd.Series(False, index=work.index)
    checks: dict[str, str] = {}
    flagged: dict[str, int] = {}
    rows_checked: dict[str, int] = {}

    def present(column: str) -> pd.Series:
        return work[column].map(lambda v: isinstance(v, str) and bool(v.strip()) or (
            not isinstance(v, str) and not _missing(v)))

    def record(name: str, column: str, test) -> None:
        nonlocal leaked
        if column not in work.columns:
            checks[name] = f"not run: no {column} column"
            rows_checked[name] = 0
            return
        has = present(column).astype(bool)
        rows_checked[name] = int(has.sum())
        if not has.any():
            checks[name] = f"not run: column {column} empty (0 of {len(work)} rows to check)"
            return
        mask = work[column].where(has).map(lambda v: bool(test(v)) if isinstance(v, str) or
                                           not _missing(v) else False).astype(bool) & has
        checks[name] = "ran" if has.all() else f"ran on {int(has.sum())} of {len(work)} rows"
        flagged[name] = int(mask.sum())
        leaked = leaked | mask

    record("example_visit_id", "example_visit_id", lambda v: str(v) in held_out.ids)
    record("anamnesis text", "anamnesis", held_out.matches)
    record("response equals dev/test", "text", lambda t: normalise_text(t) in held_out.texts)
    record("response n-grams", "text", held_out.overlaps)
    record("prompt n-grams", "prompt", held_out.overlaps)
    report = {"checks": checks, "flagged": flagged, "rows_checked": rows_checked,
              "ran": sorted(n for n, v in checks.items() if v.startswith("ran")),
              "could_not_run": sorted(n for n, v in checks.items() if v.startswith("not run")),
              "flagged_rows": int(leaked.sum()),
              "ngram": LEAKAGE_NGRAM, "ngrams_ignored": "n-grams that also stand in a train note"}
    return leaked, report
