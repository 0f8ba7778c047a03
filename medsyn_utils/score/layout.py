"""Tables in: a generation store joined with its task table, or any table in the published layout.

The published MedSyn columns (``schema.PUBLISHED_COLUMNS``) come first, then
:data:`CONTEXT_COLUMNS`; the checks that a table can be scored live here, in one place.
A generation store is read with the store's own rules, its notes must carry the fingerprint of
the task they are joined with (``artefacts.check_fingerprints``), and notes recorded as failed
(``finish_reason`` "error" or "empty") are left out and counted.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.core import artefacts
from medsyn_utils.core.errors import InputTableError
from medsyn_utils.core.schema import PUBLISHED_COLUMNS, STORE_FIELDS, TASK_COLUMNS
from medsyn_utils.score import quality
from medsyn_utils.score.scorer import text_of

REQUIRED_TABLE_COLUMNS = ("response", "symptoms", "anamnesis")
# Kept from the task table / store next to the published columns: the diagnosis name (for the
# "diagnosis named" check), the category, the example's visit id (so later stages can keep
# dev/test visits out) and why generation stopped.
CONTEXT_COLUMNS = ("code_name_ru", "category", "example_visit_id", "finish_reason")
FLAG_COLUMNS = ("bertscore_hash", "empty_response", "missing_symptoms", "missing_example", "long_text")
SCORED_COLUMNS: tuple[str, ...] = (*PUBLISHED_COLUMNS, *CONTEXT_COLUMNS, *FLAG_COLUMNS,
                                   *quality.QUALITY_COLUMNS, "filter_applies", "passed_filter")
FAILED_FINISH_REASONS = ("error", "empty")  # notes the generation stage recorded as failed
STORE_SUFFIX = ".jsonl"


@dataclass
class ScoringInput:
    """A table to score and what was left out of it on the way in."""

    table: pd.DataFrame
    source: str
    failed: dict[str, int] = field(default_factory=dict)  # finish_reason → notes left out
    rejected_lines: list[int] = field(default_factory=list)  # store lines that are not UTF-8

    def __iter__(self):
        """Unpacks as ``(table, source)``, the shape of every run-folder loader."""
        return iter((self.table, self.source))

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def describe(self) -> str:
        """One line: how many notes, from where, and the failed notes left out."""
        text = f"scoring {len(self.table)} notes from {self.source}"
        if self.failed:
            text += (f"; left out {self.failed_total} note(s) recorded as failed by generation "
                     f"({', '.join(f'{k}: {v}' for k, v in self.failed.items())})")
        if self.rejected_lines:
            shown = ", ".join(map(str, self.rejected_lines[:5]))
            more = ", ..." if len(self.rejected_lines) > 5 else ""
            text += (f"; set aside {len(self.rejected_lines)} store line(s) that are not UTF-8 "
                     f"text (line {shown}{more}), not scored: fix or delete them")
        return text


def symptom_string(value: Any) -> str:
    """A task's symptoms as the paper joined them: ", ".join(list)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v).strip() for v in value if text_of(v).strip())
    text = text_of(value).strip()
    if text.startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(text)
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, list):
                return symptom_string(parsed)
    return text


def load_store_records(path: str | os.PathLike[str], rejected: list[int] | None = None
                       ) -> list[dict[str, Any]]:
    """A generation store's records with the store's own rules (torn last line ignored, a task's
    first record wins, lines that are not UTF-8 set aside into ``rejected``); a missing or empty
    store is an error naming the generation stage."""
    from medsyn_utils.generate.store import read_records

    path = Path(path)
    if not path.is_file():
        if path.name in artefacts.MADE_BY:  # the run folder's own store: name its stage
            artefacts.require_input(path.parent, path.name)
        raise InputTableError(f"generation store {path} does not exist: check the path, or write "
                              f"it with the generation stage (medsyn generate) first")
    rejected = [] if rejected is None else rejected
    records = read_records(path, rejected)
    if not records:
        aside = f" ({len(rejected)} line(s) not UTF-8 text: line {rejected[0]})" if rejected else ""
        raise InputTableError(f"generation store {path} is empty{aside}: generate notes first "
                              f"(notebook 03 or medsyn generate)")
    missing = [c for c in ("task_id", "response") if c not in records[0]]
    if missing:
        raise InputTableError(f"generation store {path} lacks field(s) {', '.join(missing)}: "
                              f"expected the fields {', '.join(STORE_FIELDS)}")
    return records


def load_tasks(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a task table (``tasks.parquet`` or ``tasks.csv``, columns ``schema.TASK_COLUMNS``)."""
    from medsyn_utils.tasks.table import load_task_table

    frame = load_task_table(path)
    needed = ("task_id", "icd10", "prompt_kind", "symptoms", "example_text", "example_source")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputTableError(f"task table {path} lacks column(s) {', '.join(missing)}: expected "
                              f"the columns of schema.TASK_COLUMNS ({len(TASK_COLUMNS)} of them)")
    frame["task_id"] = frame["task_id"].astype(str)
    return frame


def store_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Store records as a frame with every ``schema.STORE_FIELDS`` column."""
    frame = pd.DataFrame.from_records(records)
    for name in STORE_FIELDS:
        if name not in frame.columns:
            frame[name] = None
    frame["task_id"] = frame["task_id"].astype(str)
    return frame


def published_table(store: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Store + task table → the published MedSyn columns, then :data:`CONTEXT_COLUMNS`.

    ``idx``=task_id, ``ICD-10``=icd10, ``generation_model``=model_id, ``prompt``=the prompt as
    sent, ``prior``=prompt_kind, ``example``=bool(example_text), ``example_source``,
    ``response``, ``symptoms``=", ".join(list), ``anamnesis``=example_text.
    """
    tasks = tasks.drop_duplicates("task_id").set_index("task_id")
    unknown = sorted(set(store["task_id"]) - set(tasks.index))
    if unknown:
        raise InputTableError(f"{len(unknown)} generation(s) name tasks missing from the task table "
                              f"(e.g. {unknown[:3]}): pass the task table the store was made from")
    t = tasks.loc[store["task_id"]]
    example_text = [None if not text_of(v).strip() else text_of(v) for v in t["example_text"]]
    table = pd.DataFrame({
        "idx": store["task_id"].to_numpy(),
        "ICD-10": t["icd10"].to_numpy(),
        "generation_model": store["model_id"].to_numpy(),
        "prompt": store["prompt"].to_numpy(),
        "prior": t["prompt_kind"].to_numpy(),
        "example": [v is not None for v in example_text],
        "example_source": t["example_source"].to_numpy(),
        "response": [text_of(v) for v in store["response"]],
        "symptoms": [symptom_string(v) for v in t["symptoms"]],
        "anamnesis": example_text,
        "code_name_ru": t["code_name_ru"].to_numpy() if "code_name_ru" in t else None,
        "category": t["category"].to_numpy() if "category" in t else None,
        "example_visit_id": t["example_visit_id"].to_numpy() if "example_visit_id" in t else None,
        "finish_reason": store["finish_reason"].to_numpy(),
    })
    return table




def with_published_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill the published and context columns a table lacks; symptoms as one ", "-joined string."""
    frame = frame.copy()
    for name in (*PUBLISHED_COLUMNS, *CONTEXT_COLUMNS):
        if name not in frame.columns:
            frame[name] = range(len(frame)) if name == "idx" else None
    frame["symptoms"] = [symptom_string(v) for v in frame["symptoms"]]
    return frame


def check_table(frame: pd.DataFrame, name: str = "input table") -> pd.DataFrame:
    """Check a published-layout table and fill the optional published columns it lacks."""
    artefacts.check_columns(frame, REQUIRED_TABLE_COLUMNS, name,
                  fix=f"a table to score needs {', '.join(REQUIRED_TABLE_COLUMNS)} (published "
                      f"MedSyn layout)", empty_fix="nothing to score")
    return with_published_columns(frame)


def task_table_next_to(store: Path) -> Path:
    """``tasks.parquet`` or ``tasks.csv`` beside a store; else an error naming the tasks stage."""
    try:
        return artefacts.require_input(store.parent, "tasks.parquet", "tasks.csv")
    except artefacts.MissingInputError as error:
        raise InputTableError(f"generation store {store} needs its task table: pass --tasks with the "
                              f"tasks.parquet of stage 02 ({error})") from None


def load_scoring_input(path: str | os.PathLike[str],
                       tasks: str | os.PathLike[str] | None = None) -> ScoringInput:
    """A table to score, in the published layout, with what was left out.

    ``.jsonl``: a generation store, joined with its task table (``tasks``, else ``tasks.parquet``
    or ``tasks.csv`` next to it); notes written for other tasks are refused, failed notes left out
    and counted. ``.csv`` / ``.parquet``: any table with ``response``, ``symptoms`` and
    ``anamnesis`` columns (the published 41k dataset, a scored file).
    """
    path = Path(path)
    if artefacts.table_suffix(path) == STORE_SUFFIX:
        rejected: list[int] = []
        records = load_store_records(path, rejected)
        task_path = Path(tasks) if tasks is not None else task_table_next_to(path)
        task_table = load_tasks(task_path)
        artefacts.check_fingerprints(records, task_table, store=path)
        store = store_frame(records)
        failed_rows = store["finish_reason"].isin(FAILED_FINISH_REASONS)
        failed = {str(k): int(v) for k, v in store.loc[failed_rows, "finish_reason"].value_counts().items()}
        kept = store[~failed_rows].reset_index(drop=True)
        if kept.empty:
            raise InputTableError(f"all {len(store)} notes in {path} were recorded as failed "
                                  f"({failed}): fix the generation backend and regenerate")
        return ScoringInput(published_table(kept, task_table), f"generation store {path}", failed,
                            rejected)
    frame = artefacts.read_table(path, what="input")
    return ScoringInput(fill_diagnosis_names(check_table(frame, str(path))), f"input {path}")


def read_scoring_input(path: str | os.PathLike[str],
                       tasks: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The table of :func:`load_scoring_input` (failed notes left out)."""
    return load_scoring_input(path, tasks).table


def fill_diagnosis_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill missing ``code_name_ru`` from the ``ICD-10`` column with the official МКБ-10 name
    (through the knowledge graph), so the "diagnosis named" check also runs on published tables."""
    if "ICD-10" not in frame.columns:
        return frame
    missing = frame["code_name_ru"].isna() & frame["ICD-10"].notna() if "code_name_ru" in frame \
        else frame["ICD-10"].notna()
    if not missing.any():
        return frame
    from medsyn_utils.core.errors import MedsynError
    from medsyn_utils.kg.graph import load_graph

    try:
        graph = load_graph()
    except MedsynError:
        return frame  # no data mirror: the check is skipped (NaN), not the scoring

    def name(code: Any) -> str | None:
        try:
            return graph.name(str(code)) or None
        except MedsynError:
            return None

    frame = frame.copy()
    names = frame.get("code_name_ru", pd.Series([None] * len(frame), index=frame.index)).astype(object)
    names[missing] = [name(c) for c in frame.loc[missing, "ICD-10"]]
    frame["code_name_ru"] = names
    return frame

