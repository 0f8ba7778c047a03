"""Readers of the real notes: RuMedTop3 complaints, full notes, symptom mark-up.

Every reader returns a pandas DataFrame with a ``split`` column, so callers can keep
dev/test visits out of anything that feeds the downstream experiment.
"""

from __future__ import annotations

import ast
from functools import lru_cache

import pandas as pd

from medsyn_utils.core.data import fetch

SPLITS = ("train", "dev", "test")

RUMEDTOP3_FILES = {s: f"rumedbench/RuMedTop3/{s}_v1.jsonl" for s in SPLITS}
FULL_NOTE_FILES = {
    "train": "medsyn/notes/train_v1_symp_anam_75pct.jsonl",
    "dev": "medsyn/notes/dev_v1_symp_anam.jsonl",
}
MARKUP_FILE = "rumedbench/rec_markup.csv"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")


@lru_cache(maxsize=None)
def _rumedtop3(split: str) -> pd.DataFrame:
    frame = pd.read_json(fetch(RUMEDTOP3_FILES[split]), lines=True, dtype={"idx": str, "code": str})
    frame = frame.rename(columns={"symptoms": "text"})
    frame["split"] = split
    return frame[["idx", "code", "text", "split"]]


def load_rumedtop3(splits: tuple[str, ...] | str = SPLITS) -> pd.DataFrame:
    """RuMedTop3 visits: ``idx``, ``code`` (three characters), ``text`` (complaints), ``split``."""
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    for split in splits:
        _check_split(split)
    return pd.concat([_rumedtop3(s) for s in splits], ignore_index=True)


def visit_splits() -> dict[str, str]:
    """``idx`` → split for every RuMedTop3 visit."""
    frame = load_rumedtop3()
    return dict(zip(frame["idx"], frame["split"]))


@lru_cache(maxsize=None)
def _full_notes(split: str) -> pd.DataFrame:
    frame = pd.read_json(fetch(FULL_NOTE_FILES[split]), lines=True, dtype={"idx": str, "code": str})
    complaints = _rumedtop3(split).set_index("idx")["text"]
    frame = frame.rename(columns={"symptoms": "full_text"})
    frame["complaints"] = frame["idx"].map(complaints).fillna("")
    frame["anamnesis"] = [
        full[len(c):].strip() if c and full.startswith(c) else ""
        for full, c in zip(frame["full_text"], frame["complaints"])
    ]
    frame["split"] = split
    return frame[["idx", "code", "complaints", "anamnesis", "full_text", "split"]]


def load_full_notes(splits: tuple[str, ...] | str = ("train", "dev")) -> pd.DataFrame:
    """Full notes (complaints then anamnesis) where the MedSyn mirror has them (train 75 %, dev).

    Columns: ``idx``, ``code``, ``complaints``, ``anamnesis`` (the text after the complaints),
    ``full_text``, ``split``. There are no full notes for test visits.
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    for split in splits:
        _check_split(split)
    frames = [_full_notes(s) for s in splits if s in FULL_NOTE_FILES]
    if not frames:
        return pd.DataFrame(columns=["idx", "code", "complaints", "anamnesis", "full_text", "split"])
    return pd.concat(frames, ignore_index=True)


@lru_cache(maxsize=1)
def load_markup() -> pd.DataFrame:
    """RuMedPrime symptom mark-up: ``idx``, ``symptom`` (Russian), ``keep_spans`` (list), ``split``.

    ``split`` is the RuMedTop3 split of the visit (``None`` for visits outside RuMedTop3).
    """
    frame = pd.read_csv(fetch(MARKUP_FILE), dtype=str)
    frame = frame.rename(columns={"new_event_id": "idx", "code": "symptom"})
    frame["keep_spans"] = [ast.literal_eval(v) if isinstance(v, str) else [] for v in frame["keep_spans"]]
    frame["split"] = frame["idx"].map(visit_splits())
    return frame[["idx", "symptom", "keep_spans", "split"]]
