"""The scoring stage (notebook 04, ``medsyn score``): score a table, check each note, apply the
filter, and the numbers its stage record keeps.

A run folder without generations is an error naming the generation stage; scoring real
RuMedTop3 notes in their place happens only with ``demo=True``, and is labelled so everywhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from medsyn_utils.core import artefacts
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.score import quality
from medsyn_utils.score.calibration import Calibration, calibration_pairs
from medsyn_utils.score.chunks import chunk_folder, remove_chunks, score_in_chunks
from medsyn_utils.score.filter import (
    comparable_examples,
    criteria_applied,
    filter_applies,
    filter_groups,
    group_counts,
    passed_filter,
)
from medsyn_utils.score.layout import (
    SCORED_COLUMNS,
    ScoringInput,
    check_table,
    with_published_columns,
)
from medsyn_utils.score.scorer import NoteScorer, ScoreReport

DEMO_MODEL = "demo-real-notes"  # generation_model of demo rows: real train notes, not generated
DEMO_LABEL = "DEMO DATA"


def score_table(table: pd.DataFrame, scorer: NoteScorer, *, recall_threshold: float,
                precision_threshold: float, copy_threshold: float = quality.DEFAULT_COPY_THRESHOLD,
                chunk_rows: int = 256, out: str | os.PathLike[str] | None = None,
                progress: bool = True, keep_chunks: bool = False, engine: str = "local",
                ray_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Score a published-layout table: BERTScore, the per-note checks, ``filter_applies`` and
    ``passed_filter``; returns the columns :data:`SCORED_COLUMNS`.

    With ``out``: its path is checked before any work, the scores are kept chunk by chunk in
    ``<out>.chunks/`` as they finish (a re-run after a crash or Ctrl-C continues from there and
    gives the same table), then ``out`` is written and the chunks removed (unless ``keep_chunks``).
    ``engine="ray"`` (needs ``out``) scores the chunks on Ray actors; the table is the same.
    Precision is never computed against the fallback template (``example_source`` "template").
    """
    if out is not None:
        artefacts.check_writable(out)
    elif engine != "local":
        raise ParameterError(f"scoring engine={engine!r} writes its chunks next to the output: "
                             f"give out=")
    table = check_table(table).reset_index(drop=True)
    examples = comparable_examples(table["anamnesis"], table["example_source"])
    columns = (table["response"].tolist(), table["symptoms"].tolist(), examples)
    if out is not None:
        scores = score_in_chunks(scorer, *columns, chunk_folder(out), chunk_rows=chunk_rows,
                                 progress=progress, engine=engine, ray_options=ray_options)
    else:
        scores = scorer.score(*columns, chunk_rows=chunk_rows, progress=progress)
    scored = merge_scores(table, scores, scorer.hash, recall_threshold=recall_threshold,
                          precision_threshold=precision_threshold, copy_threshold=copy_threshold)
    if out is not None:
        artefacts.write_table(scored, out)
        if not keep_chunks:
            remove_chunks(chunk_folder(out))
    return scored


def merge_scores(table: pd.DataFrame, scores: pd.DataFrame, encoder_hash: str, *,
                 recall_threshold: float, precision_threshold: float,
                 copy_threshold: float) -> pd.DataFrame:
    """The published table + its scores + the per-note checks + the filter → :data:`SCORED_COLUMNS`."""
    checks = quality.quality_table(table["response"].tolist(), table["anamnesis"].tolist(),
                                   table["code_name_ru"].tolist(), copy_threshold=copy_threshold)
    checks.index = table.index
    checks["note_tokens"] = scores["note_tokens"].to_numpy()
    merged = table.drop(columns=["symptoms_recall", "anamnesis_precision"], errors="ignore").copy()
    for name in ("symptoms_recall", "anamnesis_precision", "empty_response", "missing_symptoms",
                 "missing_example", "long_text"):
        merged[name] = scores[name].to_numpy()
    merged["bertscore_hash"] = encoder_hash
    for name in quality.QUALITY_COLUMNS:
        merged[name] = checks[name]
    merged["filter_applies"] = filter_applies(filter_groups(merged))
    merged["passed_filter"] = passed_filter(merged["symptoms_recall"], merged["anamnesis_precision"],
                                            recall_threshold, precision_threshold,
                                            merged["empty_response"], merged["filter_applies"])
    return merged[list(SCORED_COLUMNS)]


def summary(scored: pd.DataFrame, report: ScoreReport | None = None) -> dict[str, Any]:
    """Key numbers of a scored table (for the stage record and the CLI), with the criteria that
    applied and the counts per filter group."""
    numbers: dict[str, Any] = {
        "rows": len(scored),
        "passed": int(scored["passed_filter"].sum()),
        "share_passed": float(scored["passed_filter"].mean()) if len(scored) else math.nan,
        "filter_applies": int(scored["filter_applies"].sum()),
        "symptoms_recall_mean": float(scored["symptoms_recall"].mean()),
        "anamnesis_precision_mean": float(scored["anamnesis_precision"].mean()),
        "empty_responses": int(scored["empty_response"].sum()),
        "long_texts_rows": int(scored["long_text"].sum()),
        "memorised": int(scored["memorised"].sum()),
        "names_diagnosis": int((scored["names_diagnosis"] == 1).sum()),
        "placeholders_copied_rows": int((scored["placeholders_copied"] > 0).sum()),
        "non_russian": int(scored["non_russian"].sum()),
        **quality.set_metrics(scored["response"].tolist()),
        "criteria_applied": criteria_applied(scored),
        "filter_groups": group_counts(scored),
    }
    if report is not None:
        numbers.update({"bertscore_hash": report.hash, "texts_embedded": report.texts_embedded,
                        "long_texts": report.long_texts, "truncated_texts": report.truncated_texts,
                        "scoring_seconds": report.seconds})
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in numbers.items()}


def stage_metrics(scored: pd.DataFrame, report: ScoreReport | None, scoring_input: ScoringInput,
                  thresholds: Mapping[str, float], calibration: Calibration | None) -> dict[str, Any]:
    """The stage record's metrics: :func:`summary`, where the notes came from (and the failed
    notes left out), the thresholds used and the calibration table."""
    return {**summary(scored, report), "input": scoring_input.source,
            "demo": scoring_input.source.startswith(DEMO_LABEL),
            "failed_notes_excluded": dict(scoring_input.failed),
            "thresholds_used": dict(thresholds),
            "calibration": None if calibration is None else calibration.table.to_dict("records")}


def stage_data_files(uses_real_notes: bool) -> list[str]:
    """Registry names read when real notes are scored (calibration, demo notes)."""
    from medsyn_utils.core.corpus import FULL_NOTE_FILES, MARKUP_FILE, RUMEDTOP3_FILES

    if not uses_real_notes:
        return []
    return [FULL_NOTE_FILES["train"], MARKUP_FILE, *RUMEDTOP3_FILES.values()]


def demo_notes(n: int, seed: int) -> pd.DataFrame:
    """A tiny published-layout table of REAL train notes standing in for generated ones (demo only).

    Each response is a real note, its symptoms its own mark-up, its example another real note of
    the same code; ``generation_model`` is :data:`DEMO_MODEL`. Never mix these with generated notes.
    """
    pairs = calibration_pairs(n, seed)
    return with_published_columns(pd.DataFrame({
        "idx": [f"demo-{i}" for i in pairs["idx"]], "ICD-10": pairs["code"],
        "generation_model": DEMO_MODEL, "prompt": None, "prior": "symptoms+example",
        "example": pairs["other_note"].notna(), "example_source": "RuMedTop3-train",
        "response": pairs["note"], "symptoms": pairs["symptoms"], "anamnesis": pairs["other_note"],
        "category": pairs["code"], "example_visit_id": pairs["other_idx"],
    }))


def best_and_worst(scored: pd.DataFrame, k: int = 3, by: str = "symptoms_recall") -> pd.DataFrame:
    """The k best and k worst scored notes side by side with their priors (symptoms, example)."""
    ranked = scored[scored[by].notna()].sort_values(by, ascending=False)
    keep = ["idx", "ICD-10", "prior", by, "anamnesis_precision" if by == "symptoms_recall" else
            "symptoms_recall", "passed_filter", "symptoms", "response", "anamnesis"]
    best = ranked.head(k)[keep].assign(rank="best")
    worst = ranked.tail(k)[keep].iloc[::-1].assign(rank="worst")
    return pd.concat([best, worst]).set_index(["rank", "idx"])
