"""Property-based tests (Hypothesis) of every reader of a user file: whatever the bytes, a reader
gives a valid result or the kit's own error (:class:`MedsynError`), never another exception, and
never changes the file it reads.

Readers: task tables (Parquet, CSV, JSONL, JSON), the generation store (and scoring's store
input), scored/input tables (CSV, TSV, JSONL, Parquet, the downstream synthetic reader), YAML
parameter files (the runner's, the tasks stage's, the IFT export's).

Budget: the profiles in ``tests/conftest.py`` (30 examples a test; derandomized with CI=true;
HYPOTHESIS_PROFILE=long for a longer local run).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from medsyn_utils.core import artefacts
from medsyn_utils.core.errors import MedsynError
from medsyn_utils.core.schema import STORE_FIELDS, TASK_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "score"))
from score_helpers import make_store, make_tasks  # noqa: E402

KEYS = sorted({*TASK_COLUMNS, *STORE_FIELDS, "response", "symptoms", "anamnesis", "idx", "ICD-10",
               "passed_filter", "prompt", "ift", "splits", "types", "seed", "common", "tasks",
               "generation", "stages", "", " ", "ключ", "\x00", "a\nb"})
ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | \
    st.sampled_from(["\u200b", "\ufeff", "\x00", "\r\n", "NaN", "1e400", "-0", "[", "[1, [2]]",
                     "'; DROP", "J06.9", "Ј06", "True", "null", "\u202e", "a" * 300])
SCALARS = st.none() | st.booleans() | st.integers() | \
    st.floats(allow_nan=True, allow_infinity=True) | ODD_TEXT
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) |
                      st.dictionaries(st.sampled_from(KEYS) | ODD_TEXT, inner, max_size=3),
                      max_leaves=6)
RECORDS = st.dictionaries(st.sampled_from(KEYS) | ODD_TEXT, VALUES, max_size=8)


def _truncate(data: bytes, cut: int | None) -> bytes:
    return data if cut is None else data[:cut]


@st.composite
def json_lines(draw) -> bytes:
    """Lines of JSON records, other JSON values, text and raw bytes; maybe cut short."""
    line = st.one_of(RECORDS.map(lambda r: json.dumps(r, ensure_ascii=False)),
                     VALUES.map(lambda v: json.dumps(v, ensure_ascii=False)), ODD_TEXT)
    lines = [item.encode("utf-8") for item in draw(st.lists(line, max_size=6))]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.binary(max_size=12)))
    data = b"\n".join(lines) + (b"\n" if draw(st.booleans()) else b"")
    return _truncate(data, draw(st.none() | st.integers(0, max(0, len(data)))))


@st.composite
def csv_bytes(draw) -> bytes:
    """A header from the known columns and odd ones, rows of odd cells; maybe cut or not UTF-8."""
    header = draw(st.lists(st.sampled_from(KEYS) | ODD_TEXT, min_size=1, max_size=6))
    rows = draw(st.lists(st.lists(ODD_TEXT | st.integers().map(str), min_size=len(header),
                                  max_size=len(header)), max_size=5))
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, header=False, index=False) if rows else None
    data = (",".join(json.dumps(h, ensure_ascii=False) for h in header) + "\n"
            + buffer.getvalue()).encode("utf-8")
    if draw(st.booleans()):
        data += draw(st.binary(max_size=8))
    return _truncate(data, draw(st.none() | st.integers(0, max(0, len(data)))))


@st.composite
def parquet_bytes(draw) -> bytes:
    """A real Parquet file of odd records (or its first bytes), or bytes that only look like one."""
    if draw(st.booleans()):
        return b"PAR1" + draw(st.binary(max_size=40)) + b"PAR1"
    records = draw(st.lists(st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=6), max_size=4))
    try:
        buffer = io.BytesIO()
        pd.DataFrame.from_records(records).to_parquet(buffer, index=False)
        data = buffer.getvalue()
    except Exception:  # a frame pyarrow cannot write: fall back to raw bytes
        data = draw(st.binary(max_size=40))
    return _truncate(data, draw(st.none() | st.integers(0, max(0, len(data)))))


@st.composite
def yaml_bytes(draw) -> bytes:
    """A YAML document of odd values (maybe under a known section), odd text or bytes."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return draw(ODD_TEXT).encode("utf-8")
    document: Any = draw(VALUES)
    if kind == 3:
        document = {draw(st.sampled_from(["ift", "tasks", "common", "generation", "stages"])): document}
    try:
        data = yaml.safe_dump(document, allow_unicode=True).encode("utf-8")
    except yaml.YAMLError:
        data = b"{"
    return _truncate(data, draw(st.none() | st.integers(0, max(0, len(data)))))


def check_reader(reader: Callable[[Path], Any], name: str, data: bytes, *,
                 one_line: bool = True) -> None:
    """``reader`` on a file holding ``data``: a result or a MedsynError (of one line); the file
    unchanged."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            reader(path)
        except MedsynError as error:
            assert str(error).strip(), repr(error)
            assert not one_line or "\n" not in str(error).strip(), str(error)
        assert path.read_bytes() == data


# ----------------------------------------------------------------------------- task tables

def _tasks(path: Path) -> Any:
    from medsyn_utils.tasks.table import load_task_table
    return load_task_table(path)


@given(json_lines())
def test_task_table_jsonl(data):
    check_reader(_tasks, "tasks.jsonl", data)


@given(json_lines())
def test_task_table_json(data):
    check_reader(_tasks, "tasks.json", data)


@given(csv_bytes())
def test_task_table_csv(data):
    check_reader(_tasks, "tasks.csv", data)


@given(parquet_bytes())
def test_task_table_parquet(data):
    check_reader(_tasks, "tasks.parquet", data)


# ----------------------------------------------------------------------------- the store

@given(json_lines())
def test_store_records(data):
    from medsyn_utils.generate.store import read_records
    check_reader(read_records, "generations.jsonl", data)


@st.composite
def store_bytes(draw) -> bytes:
    """A real store of the score tests' tasks with odd lines mixed in and odd field values."""
    with tempfile.TemporaryDirectory() as folder:
        good = make_store(Path(folder) / "s.jsonl", ["Жалобы на кашель.", "Жалобы."]).read_bytes()
    lines = good.splitlines()
    for _ in range(draw(st.integers(0, 3))):
        record = json.loads(lines[draw(st.integers(0, len(lines) - 1))])
        record[draw(st.sampled_from(sorted(STORE_FIELDS)))] = draw(VALUES)
        lines.append(json.dumps(record, ensure_ascii=False).encode("utf-8"))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.binary(max_size=12)))
    return b"\n".join(lines) + (b"\n" if draw(st.booleans()) else b"")


@given(store_bytes())
def test_store_as_scoring_input(data):
    from medsyn_utils.score.layout import load_scoring_input
    from medsyn_utils.tasks.table import write_task_table

    with tempfile.TemporaryDirectory() as folder:
        tasks = write_task_table(make_tasks(), folder)["parquet"]
        check_reader(lambda path: load_scoring_input(path, tasks), "generations.jsonl", data)


# ----------------------------------------------------------------------------- scored / input tables

@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
@given(data=csv_bytes())
def test_scored_table_text(suffix, data):
    check_reader(artefacts.read_scored_table, f"scored{suffix}", data)


@given(json_lines())
def test_scored_table_jsonl(data):
    check_reader(artefacts.read_scored_table, "scored.jsonl", data)


@given(parquet_bytes())
def test_scored_table_parquet(data):
    check_reader(artefacts.read_scored_table, "scored.parquet", data)


@given(csv_bytes())
def test_scoring_input_table(data):
    from medsyn_utils.score.layout import read_scoring_input
    check_reader(read_scoring_input, "notes.csv", data)


# ----------------------------------------------------------------------------- parameter files

@given(yaml_bytes())
def test_runner_params_file(data):
    from medsyn_utils.pipeline.planning import load_params_file

    # pipeline/ belongs to the stage contract: its YAML errors may span lines (the CLI prints
    # them on one); only "the kit's error, file unchanged" is asserted here.
    check_reader(load_params_file, "params.yaml", data, one_line=False)


@given(yaml_bytes())
def test_tasks_params_file(data):
    from medsyn_utils.tasks.build import load_params
    check_reader(load_params, "params.yaml", data)


@given(yaml_bytes())
def test_ift_params_file(data):
    from medsyn_utils.cli.ift import _ift_values, check_values
    from medsyn_utils.finetune.ift import IftOptions

    def read(path: Path) -> None:
        values = check_values(_ift_values(str(path)), str(path))
        IftOptions(**values).check()

    check_reader(read, "ift.yaml", data)
