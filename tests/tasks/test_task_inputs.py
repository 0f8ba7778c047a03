"""The task-table loader of the run folder: ``read_tasks(run_dir, path, *, demo) -> (table, source)``."""

from __future__ import annotations

import pytest

from medsyn_utils.core.artefacts import MissingInputError
from medsyn_utils.core.errors import InputTableError
from medsyn_utils.tasks.inputs import read_tasks


def test_read_tasks_missing_is_an_error_naming_the_tasks_stage(tmp_path):
    with pytest.raises(MissingInputError, match=r"no tasks.parquet in .*run the tasks stage"):
        read_tasks(tmp_path / "run", n=3, seed=0)
    assert not (tmp_path / "run" / "tasks.parquet").exists()
    with pytest.raises(InputTableError, match="does not exist"):
        read_tasks(tmp_path / "run", str(tmp_path / "other.parquet"))


def test_read_tasks_builds_a_demo_table_only_when_asked_then_reads_it_back(tmp_path, data_dir):
    run = tmp_path / "run"
    table, source = read_tasks(run, demo=True, n=3, seed=0)
    assert source.startswith("DEMO DATA") and len(table) == 3
    assert {"task_id", "user_prompt", "completion_prompt"} <= set(table.columns)
    assert (run / "tasks.parquet").is_file() and (run / "tasks.csv").is_file()
    again, source = read_tasks(run, demo=True, n=5, seed=1)  # present: read, not rebuilt
    assert source == f"tasks stage output {run / 'tasks.parquet'}"
    assert again["task_id"].tolist() == table["task_id"].astype(str).tolist()
    named, source = read_tasks(tmp_path / "elsewhere", str(run / "tasks.csv"))
    assert source == f"file {run / 'tasks.csv'}" and len(named) == 3
