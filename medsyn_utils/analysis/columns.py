"""Columns the analysis figures read: optional metric columns found under their usual names or
computed from the text, the filter groups (passed / failed / filter not applicable), and the
grouping of notes into panels and colours with labels taken from the data."""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import InputTableError
from medsyn_utils.downstream.inputs import NOT_APPLICABLE, to_category
from medsyn_utils.score.filter import filter_status
from medsyn_utils.score.quality import COPY_NGRAM
from medsyn_utils.score.scorer import PRIVATE_MARK
from medsyn_utils.score.filter import PAPER_PRECISION, PAPER_RECALL

# The filter groups of a note: passed, failed, or not applicable (a criterion had nothing to
# measure: no style example, or a fallback template); the last never counts as passed.
FILTER_GROUPS = ("passed", "failed", NOT_APPLICABLE)

MISSING_LABEL = "(none)"
SCORE_COLUMNS = ("symptoms_recall", "anamnesis_precision")
# Alternative names of the optional metric columns (first one present wins).
LENGTH_COLUMNS = ("note_words", "length_words", "n_words", "words", "response_words", "length_in_words")
COPY_COLUMNS = ("copy_share", "copy_rate", "copied_8gram_share", "copy_8gram_share",
                "ngram_copy_share", "copy_ngram_share")
NSYMPTOM_COLUMNS = ("n_symptoms", "num_symptoms", "symptom_count")
_WORD = re.compile(r"\w+")

def _first(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def count_symptoms(value: Any) -> float:
    """Number of symptoms in a ``symptoms`` cell: a list, a list literal, or ``", "``-joined text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return float("nan")
    if isinstance(value, (list, tuple, np.ndarray)):
        return float(sum(1 for v in value if str(v).strip()))
    text = str(value).strip()
    if not text:
        return 0.0
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
            if isinstance(parsed, (list, tuple)):
                return float(sum(1 for v in parsed if str(v).strip()))
        except (ValueError, SyntaxError):
            text = text.strip("[]")
    return float(sum(1 for part in re.split(r"[,;\n]", text) if part.strip(" '\"")))


def copy_share(response: Any, example: Any, n: int = COPY_NGRAM) -> float:
    """Share of the note's word ``n``-grams found in its style example (NaN without an example).

    The scoring stage's metric (:func:`medsyn_utils.score.quality.copied_ngram_share`); a published
    ``private_data`` example counts as missing.
    """
    from medsyn_utils.score.quality import copied_ngram_share

    if not isinstance(response, str) or not isinstance(example, str):
        return float("nan")
    if example.strip() == PRIVATE_MARK:
        return float("nan")
    return copied_ngram_share(response, example, n)


def add_derived_columns(frame: pd.DataFrame, *, recall_threshold: float = PAPER_RECALL,
                        precision_threshold: float = PAPER_PRECISION) -> tuple[pd.DataFrame, dict[str, str]]:
    """Add the kit's analysis columns (``_length``, ``_n_symptoms``, ``_copy``, ``_passed``,
    ``_category``) from the scoring stage's columns when present, else computed from the text.

    Returns the new table and a note per column saying where its values came from.
    """
    out = frame.copy()
    notes: dict[str, str] = {}
    length = _first(out, LENGTH_COLUMNS)
    if length:
        out["_length"] = pd.to_numeric(out[length], errors="coerce")
        notes["_length"] = f"column {length}"
    elif "response" in out.columns:
        out["_length"] = out["response"].fillna("").astype(str).str.count(_WORD.pattern)
        notes["_length"] = "words counted in response"
    nsym = _first(out, NSYMPTOM_COLUMNS)
    if nsym:
        out["_n_symptoms"] = pd.to_numeric(out[nsym], errors="coerce")
        notes["_n_symptoms"] = f"column {nsym}"
    elif "symptoms" in out.columns:
        unique = {v: count_symptoms(v) for v in out["symptoms"].dropna().astype(str).unique()}
        out["_n_symptoms"] = out["symptoms"].map(
            lambda v: count_symptoms(v) if not isinstance(v, str) else unique.get(v, 0.0))
        notes["_n_symptoms"] = "counted in symptoms"
    copy = _first(out, COPY_COLUMNS)
    if copy:
        out["_copy"] = pd.to_numeric(out[copy], errors="coerce")
        notes["_copy"] = f"column {copy}"
    elif "response" in out.columns and "anamnesis" in out.columns:
        out["_copy"] = [copy_share(r, a, COPY_NGRAM)
                        for r, a in zip(out["response"], out["anamnesis"])]
        notes["_copy"] = f"share of response word {COPY_NGRAM}-grams found in anamnesis"
    if "passed_filter" in out.columns or any(c in out.columns for c in SCORE_COLUMNS):
        try:
            applies, passed, how = filter_status(out, recall_threshold, precision_threshold)
        except InputTableError:  # score columns without any value: no filter to show
            applies = None
        if applies is not None:
            out["_passed"] = passed.astype(float)
            out["_filter_group"] = pd.Series("passed", index=out.index).where(passed, "failed")
            out.loc[~applies, "_filter_group"] = NOT_APPLICABLE
            notes["_passed"] = (f"{how}; a note the filter does not apply to is its own group "
                                f"({NOT_APPLICABLE}), never passed")
    code = _first(out, ("ICD-10", "category", "icd10"))
    if code:
        out["_category"] = out[code].map(to_category)
    for column in SCORE_COLUMNS:
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce")
    return out, notes


def display_label(value: Any) -> str:
    """A value as a plot label: missing → ``(none)``; a local model path → its last two parts."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_LABEL
    text = str(value)
    if text.startswith(("/", "~")) and text.count("/") > 2:
        return "…/" + "/".join(Path(text).parts[-2:])
    return text


def _labels(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].map(display_label)


@dataclass
class Groups:
    """The facet column (one panel per value) and hue column (one colour per value)."""

    facet: str
    hue: str
    facet_order: list[str]
    hue_order: list[str]
    note: str = ""


def prepare_groups(frame: pd.DataFrame, group_columns: Sequence[str]) -> tuple[pd.DataFrame, Groups]:
    """Resolve the grouping columns (facet = first present, hue = second) with labels from the data."""
    present = [c for c in group_columns if c in frame.columns]
    missing = [c for c in group_columns if c not in frame.columns]
    out = frame.copy()
    note = f"grouping column(s) {', '.join(missing)} absent" if missing else ""
    if not present:
        out["_facet"] = "all"
        facet = "_facet"
    else:
        facet = present[0]
        out[facet] = _labels(out, facet)
    if len(present) >= 2:
        hue = present[1]
        out[hue] = _labels(out, hue)
    else:
        out["_hue"] = "all"
        hue = "_hue"
    return out, Groups(facet, hue, sorted(out[facet].unique()), sorted(out[hue].unique()), note)


def real_note_lengths() -> tuple[dict[str, pd.Series], str | None]:
    """Word counts of real notes (RuMedTop3 train complaints, full train notes) for comparison."""
    from medsyn_utils.core.corpus import load_full_notes, load_rumedtop3
    from medsyn_utils.core.errors import DataError

    try:
        complaints = load_rumedtop3("train")["text"]
        full = load_full_notes("train")["full_text"]
    except DataError as error:
        return {}, f"real notes unavailable ({error})"
    return {"real complaints\n(RuMedTop3 train)": complaints.str.count(_WORD.pattern),
            "real full notes\n(train)": full.str.count(_WORD.pattern)}, None


def task_categories() -> tuple[set[str] | None, str | None]:
    """The 105 RuMedTop3 categories (``None`` with a note when the data is unavailable)."""
    from medsyn_utils.core.corpus import load_rumedtop3
    from medsyn_utils.core.errors import DataError

    try:
        return set(load_rumedtop3("train")["code"]), None
    except DataError as error:
        return None, f"RuMedTop3 codes unavailable ({error})"
