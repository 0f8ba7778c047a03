"""Notebook 02 runs headless under papermill and records its numbers in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02_prompt_construction.ipynb"

pytestmark = pytest.mark.notebooks


def test_notebook_02_writes_tasks_and_metrics(tmp_path, data_dir):
    papermill = pytest.importorskip("papermill")
    run = tmp_path / "run"
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "02.ipynb"), kernel_name="python3",
        parameters={"run_dir": str(run), "n": 40, "seed": 2, "k_min": 2, "k_max": 4,
                    "prompt_mix": {"symptoms+example": 2, "symptoms": 1, "code": 1}},
        cwd=str(NOTEBOOK.parent), progress_bar=False)
    record = json.loads((run / "02_prompt_construction.json").read_text(encoding="utf-8"))
    metrics = record["metrics"]
    assert metrics["n_tasks"] == 40
    assert metrics["prompt_kinds"] == {"code": 10, "symptoms": 10, "symptoms+example": 20}
    assert 2 <= metrics["mean_symptoms"] <= 4
    assert 0 <= metrics["tv_distance_visit_share"] <= 1
    assert record["parameters"]["seed"] == 2 and record["parameters"]["k_max"] == 4
    assert record["artefacts"]["parquet"]["rows"] == 40
    from medsyn_utils.tasks.table import load_task_table
    frame = load_task_table(run)
    assert len(frame) == 40 and (run / "tasks.csv").is_file()
    # the table is the package's: same options and seed, same tasks
    from medsyn_utils.tasks.build import build_task_table
    again = build_task_table(40, 2, k_min=2, k_max=4,
                                   prompt_mix={"symptoms+example": 2, "symptoms": 1, "code": 1})
    assert frame["task_id"].tolist() == again["task_id"].tolist()
    assert frame["icd10"].tolist() == again["icd10"].tolist()
