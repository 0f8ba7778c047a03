"""Inputs of the downstream experiment: real RuMedTop3 visits and the synthetic notes to add.

Synthetic rows go through counted steps: selection by model / prior / example source (the
paper compared models separately), empty responses, the BERTScore filter (optional; a criterion
that did not apply never counts as passed), codes outside the 105 RuMedTop3 categories, and
the leakage guard (:mod:`medsyn_utils.downstream.leakage`).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.codes import category_of
from medsyn_utils.core.errors import CodeError, InputTableError, ParameterError
from medsyn_utils.downstream.leakage import HeldOut, check_leakage, held_out_visits
from medsyn_utils.score.filter import PAPER_THRESHOLDS, SCORE_COLUMNS, filter_status

REAL_DATA_FILES = ["rumedbench/RuMedTop3/train_v1.jsonl", "rumedbench/RuMedTop3/dev_v1.jsonl",
                   "rumedbench/RuMedTop3/test_v1.jsonl", "medsyn/notes/dev_v1_symp_anam.jsonl",
                   "medsyn/notes/train_v1_symp_anam_75pct.jsonl"]
CODE_COLUMNS = ("ICD-10", "icd10", "category", "code")
# selection parameter → column of the published schema
SELECTION_COLUMNS = {"models": "generation_model", "priors": "prior",
                     "example_sources": "example_source"}
NOT_APPLICABLE = "filter not applicable"
KEEP_COLUMNS = ("generation_model", "prior", "example_source", "idx", "filter_group", "selected")


def to_category(code: Any) -> str | None:
    """Three-character ICD-10 category (``"j06.9"`` → ``"J06"``; Cyrillic look-alikes mapped),
    ``None`` if malformed."""
    if not isinstance(code, str):
        return None
    try:
        return category_of(code)
    except CodeError:
        return None


def load_real() -> dict[str, pd.DataFrame]:
    """RuMedTop3 visits per split: ``idx``, ``code``, ``text`` (the complaint text)."""
    from medsyn_utils.core.corpus import load_rumedtop3

    frame = load_rumedtop3()
    return {split: frame[frame["split"] == split][["idx", "code", "text"]].reset_index(drop=True)
            for split in ("train", "dev", "test")}


def _label(value: Any) -> str:
    return "(none)" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def select_rows(frame: pd.DataFrame, **selection: Sequence[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows whose ``generation_model`` / ``prior`` / ``example_source`` are among the given values.

    Keywords are those of :data:`SELECTION_COLUMNS`; an empty list keeps every value. A value
    absent from the table is an error listing the values present (a typo never selects nothing).
    """
    counts: dict[str, Any] = {"rows_before_selection": int(len(frame))}
    keep = pd.Series(True, index=frame.index)
    for key, values in selection.items():
        if key not in SELECTION_COLUMNS:
            raise ParameterError(f"unknown selection {key!r}: use {', '.join(SELECTION_COLUMNS)}")
        values = [str(v) for v in (values or [])]
        if not values:
            continue
        column = SELECTION_COLUMNS[key]
        if column not in frame.columns:
            raise ParameterError(f"{key} selects on the column {column!r}, which the synthetic "
                                 f"table lacks: leave {key} empty")
        labels = frame[column].map(_label)
        present = sorted(labels.unique())
        unknown = [v for v in values if v not in present]
        if unknown:
            raise ParameterError(f"{key}: {', '.join(unknown)} not in the table's {column} "
                                 f"(present: {', '.join(present)})")
        keep &= labels.isin(values)
        counts[key] = values
    selected = frame[keep]
    for column in SELECTION_COLUMNS.values():
        if column in selected.columns:
            counts[f"{column}_counts"] = {k: int(v) for k, v in
                                          selected[column].map(_label).value_counts().items()}
    counts["rows_selected"] = int(len(selected))
    return selected, counts


def _filter_groups(frame: pd.DataFrame, recall_threshold: float, precision_threshold: float
                   ) -> tuple[pd.Series, str]:
    applies, passed, how = filter_status(frame, recall_threshold, precision_threshold)
    groups = pd.Series(np.where(passed, "passed", "failed"), index=frame.index, dtype=object)
    groups[~applies] = NOT_APPLICABLE
    return groups, how


def prepare_synthetic(frame: pd.DataFrame, *, categories: Iterable[str],
                      held_out: HeldOut | None = None, use_filter: bool = False,
                      recall_threshold: float = PAPER_THRESHOLDS["symptoms_recall"],
                      precision_threshold: float = PAPER_THRESHOLDS["anamnesis_precision"],
                      text_column: str = "response") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Synthetic notes ready for training (``text``, ``code`` and the grouping columns) and
    counts of what was left out at each step."""
    if text_column not in frame.columns:
        raise InputTableError(f"synthetic table lacks the column {text_column!r}: give a scored "
                              f"dataset in the published schema (columns: response, ICD-10, ...)")
    code_column = next((c for c in CODE_COLUMNS if c in frame.columns), None)
    if code_column is None:
        raise InputTableError(f"synthetic table lacks a code column (one of {', '.join(CODE_COLUMNS)}):"
                              f" give a scored dataset in the published schema")
    categories = set(categories)
    held_out = held_out if held_out is not None else held_out_visits()
    counts: dict[str, Any] = {"input_rows": int(len(frame))}
    work = frame.copy()
    work["text"] = work[text_column].where(work[text_column].map(lambda t: isinstance(t, str)), "")
    empty = work["text"].str.strip() == ""
    counts["empty_response"] = int(empty.sum())
    work = work[~empty]

    counts["filter"], counts["failed_filter"], counts["filter_not_applicable"] = "off", 0, 0
    has_scores = "passed_filter" in work.columns or any(c in work.columns for c in SCORE_COLUMNS)
    if use_filter or has_scores:
        try:
            work["filter_group"], how = _filter_groups(work, recall_threshold, precision_threshold)
        except InputTableError:
            if use_filter:
                raise
            how = ""
        if use_filter:
            counts["filter"] = how
            counts["failed_filter"] = int((work["filter_group"] == "failed").sum())
            counts["filter_not_applicable"] = int((work["filter_group"] == NOT_APPLICABLE).sum())
            work = work[work["filter_group"] == "passed"]

    work["code"] = work[code_column].map(to_category)
    outside = ~work["code"].isin(categories)
    counts["outside_task_codes"] = int(outside.sum())
    counts["outside_task_code_examples"] = {
        str(k): int(v) for k, v in work.loc[outside, code_column].astype(str).value_counts().head(10).items()}
    work = work[~outside]

    leaked, report = check_leakage(work, held_out)
    counts["leakage"] = report
    counts["leaked_dev_test"] = int(leaked.sum())
    work = work[~leaked]
    counts["kept"] = int(len(work))
    counts["kept_codes"] = int(work["code"].nunique())
    keep = ["text", "code"] + [c for c in KEEP_COLUMNS if c in work.columns]
    return work[keep].reset_index(drop=True), counts


# --------------------------------------------------------------------------------------------
# Selection by any numeric column (--select 'COLUMN>=VALUE') and the empty-result guard
# --------------------------------------------------------------------------------------------

_SELECT = re.compile(r"^\s*([^<>=!\s]+)\s*(>=|<=|==|>|<)\s*(\S+)\s*$")
_OPERATORS = {">=": np.greater_equal, "<=": np.less_equal, "==": np.equal,
              ">": np.greater, "<": np.less}


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Columns with at least one numeric value (what ``select`` can compare)."""
    return sorted(str(c) for c in frame.columns
                  if pd.to_numeric(frame[c], errors="coerce").notna().any()
                  and frame[c].dtype != bool)


def parse_select(expression: str, frame: pd.DataFrame) -> tuple[str, str, float]:
    """``'symptom_coverage>=0.5'`` → ``("symptom_coverage", ">=", 0.5)``, checked against ``frame``."""
    available = ", ".join(numeric_columns(frame)) or "none"
    match = _SELECT.match(str(expression))
    if not match:
        raise ParameterError(f"select={expression!r} is not COLUMN OP VALUE with OP one of "
                             f">=, >, <=, <, == (e.g. 'symptoms_recall>=0.65'); numeric columns "
                             f"available: {available}")
    column, op, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise ParameterError(f"select={expression!r}: the value {raw!r} is not a finite number")
    if column not in frame.columns:
        raise ParameterError(f"select={expression!r}: the synthetic table has no column "
                             f"{column!r}; numeric columns available: {available}")
    if column not in numeric_columns(frame):
        raise ParameterError(f"select={expression!r}: column {column!r} holds no numbers; "
                             f"numeric columns available: {available}")
    return column, op, value


def select_mask(frame: pd.DataFrame, expression: str) -> pd.Series:
    """Rows passing ``expression``; a missing value never passes."""
    column, op, value = parse_select(expression, frame)
    values = pd.to_numeric(frame[column], errors="coerce")
    return pd.Series(_OPERATORS[op](values.to_numpy(dtype=float), value) & values.notna().to_numpy(),
                     index=frame.index)


def steps_line(counts: dict[str, Any]) -> str:
    """The counts at each step of :func:`prepare_synthetic` and why rows were dropped."""
    read = counts.get("input_rows", 0)
    parts = [f"{counts.get('rows_before_selection', read)} read"]
    if "rows_selected" in counts:
        parts.append(f"{counts['rows_selected']} selected by model/prior/example source")
    after_empty = read - counts.get("empty_response", 0)
    parts.append(f"{after_empty} with a non-empty response ({counts.get('empty_response', 0)} empty)")
    after_filter = after_empty - counts.get("failed_filter", 0) - counts.get("filter_not_applicable", 0)
    if counts.get("filter", "off") != "off":
        parts.append(f"{after_filter} passed the filter ({counts.get('failed_filter', 0)} failed, "
                     f"{counts.get('filter_not_applicable', 0)} where it did not apply; "
                     f"{counts['filter']})")
    outside = counts.get("outside_task_codes", 0)
    examples = ", ".join(f"{k} ×{v}" for k, v in counts.get("outside_task_code_examples", {}).items())
    parts.append(f"{after_filter - outside} with one of the 105 RuMedTop3 codes ({outside} outside"
                 + (f": {examples}" if examples else "") + ")")
    parts.append(f"{counts.get('kept', 0)} after the leakage guard "
                 f"({counts.get('leaked_dev_test', 0)} drawing on dev/test text)")
    if "select" in counts:
        parts.append(f"{counts.get('kept_selected', 0)} passing select {counts['select']!r}")
    return "; ".join(parts)


def require_notes(counts: dict[str, Any], kept: int, what: str = "synthetic notes") -> None:
    """Stop with the counts at each step when nothing is left to train on: an experiment with 0
    synthetic notes would report real + synthetic identical to real only as a result."""
    if kept < 1:
        raise InputTableError(f"no {what} left to train on, so there is no experiment to report: "
                              f"{steps_line(counts)}. Check the codes, the response column, the "
                              f"filter thresholds and the selection")
