"""The paper's filter, with honest semantics: which criteria apply to a note, and whether it passed.

A note passes when symptoms_recall ≥ its threshold and anamnesis_precision > its threshold
(paper: 0.65 and 0.7 with ``bert-base-multilingual-cased``). A criterion applies only where its
reference exists: recall where the prompt gave symptoms, precision where it gave a REAL style
example. ``filter_applies`` is False for a note that nothing can be checked against (prompt(code)
without an example) and for a note whose prompt asked for a style example that cannot be
compared (the one-sentence fallback template, or an example the published data hides as
``private_data``); such notes never pass, and are counted as their own group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.score.scorer import PRIVATE_MARK, text_of

PAPER_THRESHOLDS = {"symptoms_recall": 0.65, "anamnesis_precision": 0.7}  # the one place
PAPER_RECALL = PAPER_THRESHOLDS["symptoms_recall"]
PAPER_PRECISION = PAPER_THRESHOLDS["anamnesis_precision"]
TEMPLATE_SOURCE = "template"  # example_source of the one-sentence fallback template
# The groups a scored table is counted by (summary, figures, downstream selection).
FILTER_GROUPS = {
    "both": "symptoms and a real style example: both criteria",
    "symptoms-only": "symptoms, no style example: recall only",
    "example-only": "a real style example, no symptoms: precision only",
    "code-only": "no symptoms, no example: no criterion applies",
    "template-example": "fallback template as style example: not comparable",
    "private-example": "style example hidden (private_data): not comparable",
}


def _is_template(source: Any) -> bool:
    return text_of(source).strip().lower() == TEMPLATE_SOURCE


def comparable_examples(anamnesis: Sequence[Any], example_source: Sequence[Any]) -> list[Any]:
    """The style examples precision may be computed against: None for a fallback template."""
    return [None if _is_template(s) else a for a, s in zip(anamnesis, example_source)]


def filter_groups(table: pd.DataFrame) -> pd.Series:
    """Each note's group (a key of :data:`FILTER_GROUPS`) from its symptoms and example columns."""
    n = len(table)
    symptoms = table["symptoms"] if "symptoms" in table else pd.Series([None] * n, index=table.index)
    anamnesis = table["anamnesis"] if "anamnesis" in table else pd.Series([None] * n, index=table.index)
    source = table["example_source"] if "example_source" in table else pd.Series([None] * n, index=table.index)
    groups = []
    for sym, text, src in zip(symptoms, anamnesis, source):
        has_symptoms = bool(text_of(sym).strip())
        example = text_of(text).strip()
        if _is_template(src):
            groups.append("template-example")
        elif example == PRIVATE_MARK:
            groups.append("private-example")
        elif example:
            groups.append("both" if has_symptoms else "example-only")
        else:
            groups.append("symptoms-only" if has_symptoms else "code-only")
    return pd.Series(groups, index=table.index, dtype=object, name="filter_group")


def filter_applies(groups: Sequence[str]) -> np.ndarray:
    """True where at least one criterion applies and none the prompt asked for is uncomparable."""
    return np.isin(np.asarray(list(groups), dtype=object), ["both", "symptoms-only", "example-only"])


def passed_filter(recall: Sequence[float], precision: Sequence[float], recall_threshold: float,
                  precision_threshold: float, empty: Sequence[bool] | None = None,
                  applies: Sequence[bool] | None = None) -> np.ndarray:
    """The paper's rule on the criteria that apply: recall ≥ its threshold, precision > its.

    A NaN score is a criterion that does not apply (no reference); a note with no criterion
    applying never passes, nor does an empty response or a note where ``applies`` is False.
    """
    recall = np.asarray(recall, dtype=float)
    precision = np.asarray(precision, dtype=float)
    with np.errstate(invalid="ignore"):
        ok = (np.isnan(recall) | (recall >= recall_threshold)) & \
             (np.isnan(precision) | (precision > precision_threshold))
    ok &= ~(np.isnan(recall) & np.isnan(precision))
    if empty is not None:
        ok &= ~np.asarray(empty, dtype=bool)
    if applies is not None:
        ok &= np.asarray(applies, dtype=bool)
    return ok


SCORE_COLUMNS = ("symptoms_recall", "anamnesis_precision")


def filter_status(frame: pd.DataFrame,
                  recall_threshold: float = PAPER_THRESHOLDS["symptoms_recall"],
                  precision_threshold: float = PAPER_THRESHOLDS["anamnesis_precision"],
                  ) -> tuple[pd.Series, pd.Series, str]:
    """Per row of a scored table: does the filter apply, did the note pass, and from where.

    The one reading of the filter for scoring, analysis, downstream and the fine-tuning export.
    ``filter_applies`` and ``passed_filter`` columns (what scoring decided) are used when
    present; otherwise :func:`passed_filter`'s rule on the scores: a missing score is a criterion
    that does not apply, a note with no score at all is not filtered and never passes. A table
    with neither column nor any score value is an error that says to score it first.
    """
    from medsyn_utils.core.errors import InputTableError

    has_scores = any(c in frame.columns and pd.to_numeric(frame[c], errors="coerce").notna().any()
                     for c in SCORE_COLUMNS)
    if "passed_filter" not in frame.columns and not has_scores:
        raise InputTableError("the filter needs scores but the table has none (no passed_filter, "
                              "symptoms_recall or anamnesis_precision values): score it first "
                              "(medsyn score) or turn use_filter off")
    scores = {c: pd.to_numeric(frame[c], errors="coerce") if c in frame.columns
              else pd.Series(np.nan, index=frame.index) for c in SCORE_COLUMNS}
    given = frame["passed_filter"].astype("boolean").fillna(False).astype(bool) \
        if "passed_filter" in frame.columns else None
    if "filter_applies" in frame.columns:
        applies = frame["filter_applies"].astype("boolean").fillna(False).astype(bool)
        how = "filter_applies column"
    else:  # a note scoring passed had a criterion that applied
        applies = scores["symptoms_recall"].notna() | scores["anamnesis_precision"].notna()
        if given is not None:
            applies |= given
        how = "applies where a score is present"
    if given is not None:
        passed = given
        how = f"passed_filter column; {how}"
    else:
        passed = pd.Series(passed_filter(scores["symptoms_recall"], scores["anamnesis_precision"],
                                         recall_threshold, precision_threshold),
                           index=frame.index)
        how = (f"symptoms_recall >= {recall_threshold:g} and anamnesis_precision > "
               f"{precision_threshold:g} where present; {how}")
    return applies, passed & applies, how


def group_counts(scored: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per filter group: notes and notes passing (for the summary and the CLI)."""
    groups = filter_groups(scored)
    passed = scored["passed_filter"].astype(bool) if "passed_filter" in scored else \
        pd.Series(False, index=scored.index)
    return {name: {"notes": int((groups == name).sum()), "passed": int(passed[groups == name].sum())}
            for name in FILTER_GROUPS if (groups == name).any()}


def criteria_applied(scored: pd.DataFrame) -> dict[str, int]:
    """How many notes each criterion was applied to (a table without examples has no precision)."""
    def count(column: str) -> int:
        return int(scored[column].notna().sum()) if column in scored else 0

    return {"symptoms_recall": count("symptoms_recall"), "anamnesis_precision": count("anamnesis_precision"),
            "filter_applies": int(scored["filter_applies"].sum()) if "filter_applies" in scored else 0}


def threshold_sweep(scored: pd.DataFrame, recall_grid: Sequence[float] | None = None,
                    precision_grid: Sequence[float] | None = None) -> pd.DataFrame:
    """Share of notes passing for every pair of thresholds on a grid (long format)."""
    recall_grid = np.round(np.linspace(0.5, 1.0, 11), 3) if recall_grid is None else recall_grid
    precision_grid = np.round(np.linspace(0.5, 1.0, 11), 3) if precision_grid is None else precision_grid
    empty = scored.get("empty_response")
    applies = scored.get("filter_applies")
    rows = []
    for r in recall_grid:
        for p in precision_grid:
            ok = passed_filter(scored["symptoms_recall"], scored["anamnesis_precision"], r, p, empty,
                               applies)
            rows.append({"recall_threshold": float(r), "precision_threshold": float(p),
                         "share_passing": float(ok.mean()) if len(ok) else math.nan})
    return pd.DataFrame(rows)
