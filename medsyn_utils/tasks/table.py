"""The task table's files: ``tasks.parquet`` and ``tasks.csv``, one writer and one reader.

:func:`write_task_table` writes both byte-identically for the same table (stage 02 builds it with
:func:`medsyn_utils.tasks.build.build_task_table`); :func:`load_task_table` is the one reader every
stage uses, for stage 02's files and for task tables made by hand.
"""

from __future__ import annotations

import ast
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from medsyn_utils.core.artefacts import check_columns
from medsyn_utils.core.errors import InputTableError
from medsyn_utils.core.paths import resolve, run_dir
from medsyn_utils.core.provenance import write_atomic
from medsyn_utils.core.schema import TASK_COLUMNS

PARQUET_NAME = "tasks.parquet"
CSV_NAME = "tasks.csv"
EXAMPLE_COLUMNS = ("example_visit_id", "example_text", "example_source")
INTEGER_COLUMNS = ("age", "seed")


def text_or(value: Any, empty: str) -> str:
    """``value`` as text; ``empty`` for None or NaN (a missing cell)."""
    return empty if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


_ARROW_SCHEMA = pa.schema([
    (name, pa.list_(pa.string()) if name == "symptoms" else
     pa.int64() if name in ("age", "seed") else pa.bool_() if name == "smoking" else pa.string())
    for name in TASK_COLUMNS
])


def _check_columns(frame: pd.DataFrame, where: str) -> None:
    check_columns(frame, TASK_COLUMNS, where,
                  fix="rebuild it with build_task_table / `medsyn tasks`",
                  empty_fix="build it with n >= 1")


def task_table_bytes(frame: pd.DataFrame) -> tuple[bytes, bytes]:
    """``(parquet, csv)`` bytes of a task table; same table → same bytes.

    Parquet carries no pandas metadata (it would record library versions); lists are written as
    Arrow lists in Parquet and as JSON arrays in the CSV.
    """
    _check_columns(frame, "task table")
    frame = frame[list(TASK_COLUMNS)]
    columns = {}
    for name in TASK_COLUMNS:
        values = frame[name].tolist()
        if name == "symptoms":
            values = [list(v) for v in values]
        elif name in ("age", "seed"):
            values = [int(v) for v in values]
        elif name == "smoking":
            values = [bool(v) for v in values]
        else:
            values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                      for v in values]
        columns[name] = values
    table = pa.table(columns, schema=_ARROW_SCHEMA).replace_schema_metadata(None)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", write_statistics=True)
    csv_frame = pd.DataFrame({
        name: ([json.dumps(v, ensure_ascii=False) for v in columns[name]] if name == "symptoms"
               else columns[name]) for name in TASK_COLUMNS
    })
    csv_text = csv_frame.to_csv(index=False, lineterminator="\n")
    return buffer.getvalue(), csv_text.encode("utf-8")


def write_task_table(frame: pd.DataFrame, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``tasks.parquet`` and ``tasks.csv`` into ``folder`` (atomically, byte-reproducibly)."""
    out = run_dir(folder)
    parquet, csv = task_table_bytes(frame)
    return {"parquet": write_atomic(out / PARQUET_NAME, parquet),
            "csv": write_atomic(out / CSV_NAME, csv)}


def load_task_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A task table from a run folder (``tasks.parquet``, else ``tasks.csv``) or a file.

    Reads ``.parquet``, ``.csv``, ``.jsonl``/``.ndjson`` and ``.json``: stage 02's files or a
    table made by hand. Each stage then checks the columns it needs (generation only needs ids
    and prompts). Whatever the format, the columns of stage 02 come back with the same types:
    symptoms as lists (JSON or Python list text in a CSV is parsed), ``example_*`` as text or
    None, ``age``/``seed`` as integers, ``smoking`` as booleans, ``task_id`` as text.
    """
    file = resolve(path)
    if file.is_dir():
        file = file / PARQUET_NAME if (file / PARQUET_NAME).is_file() else file / CSV_NAME
    if not file.is_file():
        raise InputTableError(f"task table {file} does not exist: run notebook 02 or "
                              f"`medsyn tasks` first, or pass the right path")
    suffix = file.suffix.lower()
    readers = {
        ".parquet": lambda f: pq.read_table(f).to_pandas(),
        ".csv": lambda f: pd.read_csv(f, dtype=str, keep_default_na=False, encoding="utf-8"),
        ".jsonl": lambda f: read_json_lines(f, "task table"),
        ".ndjson": lambda f: read_json_lines(f, "task table"),
        ".json": lambda f: pd.read_json(f, dtype={"task_id": str}),
    }
    if suffix not in readers:
        raise InputTableError(f"task table {path} has an unknown format {suffix!r}: use .parquet, "
                              f".csv or .jsonl")
    try:
        frame = readers[suffix](file)
    except UnicodeDecodeError:
        raise InputTableError(f"task table {path} is not UTF-8 text: save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise InputTableError(f"task table {path} is empty: rebuild it with notebook 02") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, OSError, ImportError,
            pa.ArrowException) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0][:120]
        raise InputTableError(f"task table {path} cannot be read "
                              f"({reason}): rebuild it with notebook 02"
                              ) from None
    return _typed(frame, str(path))


def _typed(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Stage 02's column types, whichever format the table was read from."""
    if frame.empty:
        raise InputTableError(f"task table {where} has no tasks: rebuild it with notebook 02")
    if "task_id" in frame.columns:
        frame["task_id"] = frame["task_id"].astype(str)
        repeated = frame["task_id"][frame["task_id"].duplicated()]
        if len(repeated):
            raise InputTableError(f"task table {where} has a duplicated task id "
                                  f"{repeated.iloc[0]!r} ({len(repeated)} repeated row(s)): each "
                                  f"task needs its own task_id; rebuild it with notebook 02")
    if "symptoms" in frame.columns:
        frame["symptoms"] = [_symptom_list(v) for v in frame["symptoms"]]
    for name in EXAMPLE_COLUMNS:
        if name in frame.columns:
            frame[name] = pd.Series([text_or(v, "") or None for v in frame[name]],
                                    dtype=object, index=frame.index)
    for name in INTEGER_COLUMNS:
        if name in frame.columns:
            frame[name] = _integers(frame[name], name, where)
    try:
        if "smoking" in frame.columns and frame["smoking"].dtype != bool:
            flags = frame["smoking"].map({"True": True, "False": False, True: True, False: False})
            if flags.isna().any():
                raise ValueError("smoking must be True or False")
            frame["smoking"] = flags.astype(bool)
    except (ValueError, TypeError) as error:
        raise InputTableError(f"task table {where}: {str(error).splitlines()[0][:120]}: "
                              f"rebuild it with notebook 02") from None
    if all(name in frame.columns for name in TASK_COLUMNS):
        frame = frame[list(TASK_COLUMNS) + [c for c in frame.columns if c not in TASK_COLUMNS]]
    return frame


def _integers(column: pd.Series, name: str, where: str) -> pd.Series:
    """An integer column, or one line naming the column, the row and the value."""
    for row, value in enumerate(column.tolist(), start=1):
        text = value.strip() if isinstance(value, str) else value
        ok = isinstance(text, (int, np.integer)) and not isinstance(text, bool) \
            or isinstance(text, str) and text.lstrip("+-").isascii() and text.lstrip("+-").isdigit() \
            or isinstance(text, (float, np.floating)) and float(text).is_integer()
        if ok:
            try:
                number = int(text)
            except (ValueError, OverflowError):
                ok = False
            else:
                ok = -2**63 <= number < 2**63
        if not ok:
            raise InputTableError(f"task table {where}: column {name!r} row {row} is {value!r}, "
                                  f"not an integer: give whole numbers in {name}")
    return column.map(lambda v: int(v.strip() if isinstance(v, str) else v)).astype(np.int64)


def read_json_lines(path: str | os.PathLike[str], what: str) -> pd.DataFrame:
    """A JSON-lines table: every non-blank line one JSON object; else one line naming the row."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (ValueError, RecursionError) as error:
                raise InputTableError(f"{what} {path} line {number} is not JSON "
                                      f"({str(error).splitlines()[0][:80]}): fix or delete that line"
                                      ) from None
            if not isinstance(value, dict):
                raise InputTableError(f"{what} {path} line {number} is a JSON "
                                      f"{type(value).__name__}, not an object of columns: write one "
                                      f"{{\"column\": value, ...}} object a line")
            rows.append(value)
    return pd.DataFrame.from_records(rows)


def _symptom_list(value: Any) -> Any:
    """A symptom list as stored (Arrow list, JSON text, Python list text, empty cell) → a list."""
    if hasattr(value, "tolist"):
        return list(value.tolist())
    if isinstance(value, (list, tuple)):
        return list(value)
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return []
    if not isinstance(value, str) or not value.startswith("["):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return value
        return list(parsed) if isinstance(parsed, (list, tuple)) else value

