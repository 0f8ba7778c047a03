"""Notebook 01 runs headless under papermill and records its key numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.notebooks
@pytest.mark.integration
def test_graph_exploration_notebook(tmp_path, data_dir):
    import papermill as pm

    run = tmp_path / "run"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "01_graph_exploration.ipynb"), str(tmp_path / "01.ipynb"),
        parameters={"run_dir": str(run), "focus_code": "I11", "top_k": 5},
        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False,
        execution_timeout=600)
    record = json.loads((run / "01_graph_exploration.json").read_text(encoding="utf-8"))
    assert record["parameters"]["focus_code"] == "I11"
    assert record["metrics"]["focus_code"] == "I11"
    assert record["metrics"]["rumedtop3_categories_covered"] == 105
    assert record["metrics"]["focus_symptoms"] >= 5
    assert record["data"]["mkb10/1.2.643.5.1.13.13.11.1005_2.27.csv"]["sha256"]
    assert record["packages"]["networkx"]
    assert json.loads((run / "graph_stats.json").read_text())["nodes"]["chapter"] == 22
