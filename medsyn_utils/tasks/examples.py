"""Style examples of the tasks: real notes of each category, drawn with replacement.

:class:`ExampleStore` indexes the real notes of the chosen splits (train by default, so dev/test
stay clean for the downstream experiment) per three-character category; a category without notes
gets a neutral template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import ParameterError

EXAMPLE_POLICIES: tuple[str, ...] = ("full_note", "complaints", "full_only")


@dataclass(frozen=True)
class ExampleStore:
    """Real notes per three-character category, for style examples drawn with replacement.

    ``policy``: ``"full_note"`` (default) uses a visit's full note (complaints + anamnesis) where
    the MedSyn mirror has it and its RuMedTop3 complaints otherwise; ``"complaints"`` only the
    complaints; ``"full_only"`` only visits with a full note. Only notes of ``splits`` (train by
    default, so dev/test stay clean for the downstream experiment) with at least ``min_words``
    words are kept.
    """

    categories: dict[str, tuple[int, int]]  # category -> (start, count) into the arrays
    visit_id: np.ndarray
    text: np.ndarray
    source: np.ndarray
    splits: tuple[str, ...]
    min_words: int
    policy: str

    def counts(self, categories: Sequence[str]) -> np.ndarray:
        """Number of stored notes of each category."""
        return np.array([self.categories.get(c[:3], (0, 0))[1] for c in categories], dtype=np.int64)

    def sample(self, categories: Sequence[str], rng: np.random.Generator,
               fallback_text: str) -> pd.DataFrame:
        """One example per task (with replacement); a category without notes gets the template.

        Columns ``example_visit_id`` (None for the template), ``example_text``,
        ``example_source`` (e.g. ``RuMedPrime-note-train``, ``RuMedTop3-train``, ``template``).
        """
        cats = [c[:3] for c in categories]
        spans = np.array([self.categories.get(c, (0, 0)) for c in cats], dtype=np.int64).reshape(-1, 2)
        u = rng.random(len(cats))
        has = spans[:, 1] > 0
        pick = spans[:, 0] + np.floor(u * np.maximum(spans[:, 1], 1)).astype(np.int64)
        pick = np.where(has, pick, 0)
        if len(self.visit_id):
            ids = np.where(has, self.visit_id[np.minimum(pick, len(self.visit_id) - 1)], None)
            texts = np.where(has, self.text[np.minimum(pick, len(self.text) - 1)], fallback_text)
            sources = np.where(has, self.source[np.minimum(pick, len(self.source) - 1)], "template")
        else:
            ids = np.full(len(cats), None, dtype=object)
            texts = np.full(len(cats), fallback_text, dtype=object)
            sources = np.full(len(cats), "template", dtype=object)
        return pd.DataFrame({"example_visit_id": pd.Series(ids, dtype=object),
                             "example_text": pd.Series(texts, dtype=object),
                             "example_source": pd.Series(sources, dtype=object)})


_EXAMPLE_CACHE: dict[tuple, ExampleStore] = {}


def build_example_store(splits: Sequence[str] = ("train",), min_words: int = 30,
                        policy: str = "full_note") -> ExampleStore:
    """Index the real notes of ``splits`` per category (cached per arguments)."""
    from medsyn_utils.core import corpus
    splits = tuple(splits)
    for split in splits:
        if split not in corpus.SPLITS:
            raise ParameterError(f"unknown split {split!r} in splits: use some of "
                                 f"{', '.join(corpus.SPLITS)} (train only keeps dev/test clean)")
    if not splits:
        raise ParameterError("splits is empty: name at least one split, e.g. ['train']")
    if policy not in EXAMPLE_POLICIES:
        raise ParameterError(f"example_policy={policy!r} is unknown: use one of "
                             f"{', '.join(EXAMPLE_POLICIES)}")
    if not isinstance(min_words, (int, np.integer)) or min_words < 0:
        raise ParameterError(f"min_words={min_words!r} must be a non-negative integer")
    key = (splits, int(min_words), policy)
    if key in _EXAMPLE_CACHE:
        return _EXAMPLE_CACHE[key]
    visits = corpus.load_rumedtop3(splits)
    full = corpus.load_full_notes(tuple(s for s in splits if s in corpus.FULL_NOTE_FILES))
    full_text = dict(zip(full["idx"], full["full_text"]))
    rows = []
    for idx, code, text, split in visits[["idx", "code", "text", "split"]].itertuples(index=False):
        note = full_text.get(idx)
        if policy == "complaints":
            chosen, source = text, f"RuMedTop3-{split}"
        elif note:
            chosen, source = note, f"RuMedPrime-note-{split}"
        elif policy == "full_only":
            continue
        else:
            chosen, source = text, f"RuMedTop3-{split}"
        chosen = str(chosen).strip()
        if len(chosen.split()) >= min_words:
            rows.append((str(code)[:3], str(idx), chosen, source))
    rows.sort(key=lambda r: (r[0], r[1]))
    categories: dict[str, tuple[int, int]] = {}
    for i, row in enumerate(rows):
        start, count = categories.get(row[0], (i, 0))
        categories[row[0]] = (start, count + 1)
    store = ExampleStore(
        categories=categories,
        visit_id=np.array([r[1] for r in rows], dtype=object),
        text=np.array([r[2] for r in rows], dtype=object),
        source=np.array([r[3] for r in rows], dtype=object),
        splits=splits, min_words=int(min_words), policy=policy,
    )
    _EXAMPLE_CACHE[key] = store
    return store
