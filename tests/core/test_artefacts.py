"""The one reader/writer of run-folder files, task fingerprints and missing-input errors."""

from __future__ import annotations

import pandas as pd
import pytest

from medsyn_utils.core import artefacts
from medsyn_utils.core.errors import InputTableError, ParameterError


def _tasks() -> pd.DataFrame:
    return pd.DataFrame({
        "task_id": ["t000001", "t000002"], "icd10": ["J06.9", "I10"],
        "symptoms": [["кашель", "насморк"], ["головная боль"]],
        "example_visit_id": ["v1", None], "example_text": ["Жалобы на кашель.", None],
        "system_prompt": ["s", "s"], "user_prompt": ["u1", "u2"], "completion_prompt": ["c1", "c2"],
    })


def test_missing_input_names_the_stage(tmp_path):
    with pytest.raises(artefacts.MissingInputError, match="run the generation stage first"):
        artefacts.require_input(tmp_path, "generations.jsonl")
    (tmp_path / "scored.csv").write_text("a\n1\n")
    assert artefacts.require_input(tmp_path, "scored.parquet", "scored.csv").name == "scored.csv"


def test_fingerprint_survives_csv_and_changes_with_the_task(tmp_path):
    tasks = _tasks()
    before = artefacts.task_fingerprints(tasks)
    csv = tasks.assign(symptoms=[pd.io.json.ujson_dumps(s, ensure_ascii=False) for s in tasks.symptoms])
    assert artefacts.task_fingerprints(csv) == before
    changed = tasks.copy()
    changed.at[0, "symptoms"] = ["кашель"]
    assert artefacts.task_fingerprints(changed)["t000001"] != before["t000001"]
    assert artefacts.task_fingerprints(changed)["t000002"] == before["t000002"]


def test_check_fingerprints_refuses_notes_of_other_tasks():
    tasks = _tasks()
    good = [{"task_id": t, "task_fingerprint": f} for t, f in artefacts.task_fingerprints(tasks).items()]
    artefacts.check_fingerprints(good, tasks)
    with pytest.raises(InputTableError, match="written for other tasks"):
        artefacts.check_fingerprints([{**good[0], "task_fingerprint": "0" * 16}], tasks)
    with pytest.raises(InputTableError, match="written for other tasks"):
        artefacts.check_fingerprints([{"task_id": "t000001"}], tasks)


def test_csv_round_trip_keeps_control_characters_in_one_row(tmp_path):
    frame = pd.DataFrame({"response": ["строка\rвторая\nтретья", "ok"], "passed_filter": [True, False]})
    path = artefacts.write_table(frame, tmp_path / "scored.csv")
    back = artefacts.read_scored_table(path)
    assert len(back) == 2
    assert back["response"].tolist() == frame["response"].tolist()
    assert back["passed_filter"].tolist() == [True, False]


def test_bad_outputs_are_refused_before_work(tmp_path):
    with pytest.raises(ParameterError, match="must end in"):
        artefacts.check_writable(tmp_path / "x.xlsx")
    (tmp_path / "file").write_text("")
    with pytest.raises(ParameterError, match="is a file"):
        artefacts.check_writable(tmp_path / "file" / "scored.csv")


def test_unreadable_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InputTableError, match="is empty"):
        artefacts.read_table(tmp_path / "empty.csv")
    (tmp_path / "latin.csv").write_bytes("response\n".encode() + "жалобы".encode("cp1251") + b"\n")
    with pytest.raises(InputTableError, match="not UTF-8"):
        artefacts.read_table(tmp_path / "latin.csv")
    (tmp_path / "header.csv").write_text("response,symptoms\n")
    with pytest.raises(InputTableError, match="no rows"):
        artefacts.read_scored_table(tmp_path / "header.csv")
