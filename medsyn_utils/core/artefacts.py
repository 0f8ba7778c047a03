"""The run folder's files: one reader and one writer for each, used by every stage.

| file                           | made by (stage / notebook) | read by                       |
|--------------------------------|----------------------------|-------------------------------|
| ``tasks.parquet``/``tasks.csv``| tasks (02)                 | generation, scoring, finetune |
| ``generations.jsonl``          | generation (03)            | scoring, finetune             |
| ``scored.parquet``/``.csv``    | scoring (04)               | analysis, downstream, IFT     |

A missing input is a :class:`MissingInputError` naming the stage that makes it, never a stand-in.
Stages load their input through one loader per file, ``read_<file>(run_dir, path="", *,
demo=False, ...) -> (table, source)``, in the lowest layer that can build the demo stand-in:
``tasks.inputs.read_tasks``, ``score.inputs.read_generations``, ``score.inputs.read_scored``;
stage records through :func:`read_stage_record`.
Notes are bound to their tasks by :func:`task_fingerprint`: a store written for another task
table is refused by :func:`check_fingerprints`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.core.paths import folder_problem
from medsyn_utils.core.provenance import write_atomic

# Which stage (and notebook) makes each run-folder file: named in every missing-input error.
MADE_BY: dict[str, tuple[str, str]] = {
    "graph_stats.json": ("graph", "01_graph_exploration"),
    "tasks.parquet": ("tasks", "02_prompt_construction"),
    "tasks.csv": ("tasks", "02_prompt_construction"),
    "generations.jsonl": ("generation", "03_generation"),
    "scored.parquet": ("scoring", "04_bertscore_evaluation"),
    "scored.csv": ("scoring", "04_bertscore_evaluation"),
    "downstream_metrics.json": ("downstream", "06_downstream_icd"),
}

# Task-table columns a note is written from: its fingerprint covers exactly these.
FINGERPRINT_COLUMNS: tuple[str, ...] = (
    "task_id", "icd10", "symptoms", "example_visit_id", "example_text",
    "system_prompt", "user_prompt", "completion_prompt",
)

# Boolean columns of a scored table (CSV gives them back as text).
BOOL_COLUMNS: tuple[str, ...] = (
    "example", "empty_response", "missing_symptoms", "missing_example", "long_text",
    "memorised", "non_russian", "degenerate", "passed_filter", "filter_applies",
)
TEXT_COLUMNS: tuple[str, ...] = ("response", "symptoms", "anamnesis", "prompt")
TABLE_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".tsv", ".jsonl")


class MissingInputError(InputTableError):
    """An input of a stage is not in the run folder: the message names the stage that makes it."""


def require_input(run_dir: str | os.PathLike[str], *names: str) -> Path:
    """The first of ``names`` present in ``run_dir``; else a one-line error naming its stage.

    ``require_input(run, "scored.parquet", "scored.csv")`` →
    ``no scored.parquet in RUN: run the scoring stage first (notebook 04_bertscore_evaluation,
    or medsyn run --only scoring)``.
    """
    folder = Path(run_dir)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    stage, notebook = MADE_BY.get(names[0], ("previous", "?"))
    raise MissingInputError(
        f"no {names[0]} in {folder}: run the {stage} stage first (notebook {notebook}, or "
        f"medsyn run --only {stage}); for a demo on made-up data set demo: true")


def check_columns(frame: pd.DataFrame, required: Iterable[str], what: str, *, fix: str,
                  empty_fix: str) -> None:
    """One-line errors for a table that lacks columns (``fix``) or rows (``empty_fix``)."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputTableError(f"{what} lacks column(s) {', '.join(missing)}: {fix}")
    if frame.empty:
        raise InputTableError(f"{what} has no rows: {empty_fix}")


def table_suffix(path: str | os.PathLike[str]) -> str:
    """``.csv.gz`` for ``x.csv.gz``, else the lower-case suffix."""
    p = Path(path)
    if p.suffix.lower() == ".gz":
        return "".join(s.lower() for s in p.suffixes[-2:])
    return p.suffix.lower()


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def _bool(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    return {"true": True, "false": False, "1": True, "0": False}.get(text, None)


def read_table(path: str | os.PathLike[str], *, what: str = "table") -> pd.DataFrame:
    """Read ``.parquet``, ``.csv`` (``.gz``), ``.tsv`` or ``.jsonl`` into a frame."""
    path = Path(path)
    if not path.is_file():
        raise InputTableError(f"{what} {path} does not exist: check the path")
    suffix = table_suffix(path)
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".csv", ".csv.gz", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",",
                               dtype={"idx": str}, low_memory=False, encoding="utf-8")
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
    except UnicodeDecodeError as error:
        raise InputTableError(f"{what} {path} is not UTF-8 text: save it as UTF-8") from error
    except pd.errors.EmptyDataError as error:
        raise InputTableError(f"{what} {path} is empty: give a table with a header and rows") \
            from error
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError, RecursionError,
            OSError) as error:  # pandas/pyarrow parse errors, a JSON line that is not an object
        reason = (str(error).splitlines() or [type(error).__name__])[0][:160]
        raise InputTableError(f"{what} {path} cannot be read: {reason}") from error
    raise InputTableError(f"{what} {path} has an unknown type {suffix!r}: use "
                          f"{', '.join(TABLE_SUFFIXES)}")


def read_scored_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a scored dataset (the kit's ``scored.parquet``/``.csv`` or the published CSV).

    Booleans come back as booleans, text columns as text (CSV gives an empty string back as NaN).
    """
    frame = read_table(path, what="scored dataset")
    if frame.empty:
        raise InputTableError(f"scored dataset {path} has no rows: run the scoring stage "
                              f"(medsyn score) or give another file")
    for name in BOOL_COLUMNS:
        if name in frame.columns and frame[name].dtype == object:
            frame[name] = frame[name].map(_bool)
    for name in TEXT_COLUMNS:
        if name in frame.columns:
            frame[name] = [_text(v) for v in frame[name]]
    return frame


def check_writable(path: str | os.PathLike[str], suffixes: Iterable[str] = (".csv", ".parquet"),
                   *, what: str = "output") -> Path:
    """Check an output path before the work starts: known suffix, parent a writable folder."""
    path = Path(path)
    suffixes = tuple(suffixes)
    if suffixes and table_suffix(path) not in suffixes:
        raise ParameterError(f"{what} {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise ParameterError(f"{what} {path} is a folder: give a file name")
    problem = folder_problem(path.parent)
    if problem:
        raise ParameterError(f"{what} {path}: {problem}")
    return path


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write CSV or Parquet by suffix, atomically (a reader never sees half a file).

    CSV fields with line breaks or ``\\r`` are quoted, so a note stays one row.
    """
    path = check_writable(path)
    if table_suffix(path) == ".parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return write_atomic(path, buffer.getvalue())
    return write_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def _canonical(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:  # symptoms read back from CSV as JSON text
            return [_canonical(v) for v in json.loads(value)]
        except ValueError:
            return value
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def task_fingerprint(task: Mapping[str, Any]) -> str:
    """A short hash of what a note is written from (code, symptoms, example, prompts).

    The same task read from Parquet or CSV gives the same fingerprint.
    """
    content = {name: _canonical(task.get(name)) for name in FINGERPRINT_COLUMNS}
    blob = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def task_fingerprints(tasks: pd.DataFrame) -> dict[str, str]:
    """``task_id`` → fingerprint for every row of a task table."""
    return {str(row["task_id"]): task_fingerprint(row) for row in tasks.to_dict("records")}


def check_fingerprints(records: Iterable[Mapping[str, Any]], tasks: pd.DataFrame, *,
                       store: str | os.PathLike[str] = "the generation store") -> None:
    """Refuse notes that were not written for the rows of ``tasks`` they are joined with.

    A record without a ``task_fingerprint`` (written before fingerprints existed) is refused too:
    nothing proves which task it belongs to.
    """
    expected = task_fingerprints(tasks)
    bad = [r.get("task_id") for r in records
           if str(r.get("task_id")) in expected
           and r.get("task_fingerprint") != expected[str(r.get("task_id"))]]
    if bad:
        raise InputTableError(
            f"{len(bad)} note(s) in {store} were written for other tasks than the task table "
            f"(first: {bad[0]}): regenerate them (medsyn generate --force, or medsyn run) or pass "
            f"the task table they were written for")


def read_stage_record(run_dir: str | os.PathLike[str], record: str) -> dict[str, Any] | None:
    """A stage record ``<run>/<record>.json`` (``record`` such as ``04_bertscore_evaluation``),
    or ``None`` when the stage wrote none or it cannot be read as a JSON object."""
    import json

    path = Path(run_dir) / f"{record}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
