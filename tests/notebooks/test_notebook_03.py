"""Notebook 03 runs headless under papermill with a tiny model and records its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation_helpers import make_tasks

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "03_generation.ipynb"


@pytest.mark.notebooks
@pytest.mark.integration
def test_generation_notebook_with_a_tiny_model(tmp_path, tiny_lm_dir):
    import papermill as pm

    run = tmp_path / "run"
    tasks_path = tmp_path / "hand_made_tasks.parquet"
    make_tasks(5).to_parquet(tasks_path)
    parameters = {"run_dir": str(run), "tasks_path": str(tasks_path), "model": str(tiny_lm_dir),
                  "batch_size": 2, "max_new_tokens": 8, "temperature": 0.0, "show_notes": 2}
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "03.ipynb"), parameters=parameters,
                        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False,
                        execution_timeout=600)
    record = json.loads((run / "03_generation.json").read_text(encoding="utf-8"))
    metrics = record["metrics"]
    assert metrics["notes"] == 5 and metrics["generated_this_run"] == 5
    assert metrics["pending_left"] == 0 and metrics["tokens_per_s"] > 0
    assert sum(metrics["finish_reasons"].values()) == 5
    assert record["parameters"]["model"] == str(tiny_lm_dir)
    assert record["models"]["generation"]["model_id"] == str(tiny_lm_dir)
    assert record["artefacts"]["generations"]["rows"] == 5
    lines = (run / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["task_id"] for line in lines) == [f"t{i:03d}" for i in range(5)]

    # Re-running continues instead of starting over: nothing left to generate.
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "03b.ipynb"), parameters=parameters,
                        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False,
                        execution_timeout=600)
    again = json.loads((run / "03_generation.json").read_text(encoding="utf-8"))["metrics"]
    assert again["notes"] == 5 and again["generated_this_run"] == 0 and again["already_done"] == 5


@pytest.mark.notebooks
@pytest.mark.integration
def test_generation_notebook_without_a_task_table_names_the_tasks_stage(tmp_path, tiny_lm_dir):
    import papermill as pm

    run = tmp_path / "run"
    with pytest.raises(pm.PapermillExecutionError, match=r"no tasks.parquet in .*tasks stage"):
        pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "03.ipynb"),
                            parameters={"run_dir": str(run), "model": str(tiny_lm_dir)},
                            kernel_name="python3", cwd=str(ROOT / "notebooks"),
                            progress_bar=False, execution_timeout=600)
    assert not (run / "generations.jsonl").exists() and not (run / "tasks.parquet").exists()


@pytest.mark.notebooks
@pytest.mark.integration
def test_generation_notebook_on_a_local_ray(tmp_path, tiny_lm_dir):
    """engine=ray in the notebook (as `medsyn run --set generation.engine=ray` passes it)."""
    pytest.importorskip("ray", reason="the extra 'cluster' is not installed")
    import papermill as pm

    run = tmp_path / "run"
    run.mkdir()
    make_tasks(4).to_parquet(run / "tasks.parquet")
    parameters = {"run_dir": str(run), "model": str(tiny_lm_dir), "batch_size": 2,
                  "max_new_tokens": 6, "temperature": 0.0, "show_notes": 1, "engine": "ray",
                  "actors": 2, "max_failed_share": 1.0}
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "03.ipynb"), parameters=parameters,
                        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False,
                        execution_timeout=600)
    record = json.loads((run / "03_generation.json").read_text(encoding="utf-8"))
    assert record["metrics"]["engine"] == "ray" and record["parameters"]["engine"] == "ray"
    assert record["metrics"]["notes"] + record["metrics"]["failed_notes"] == 4
    lines = (run / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["task_id"] for line in lines) == [f"t{i:03d}" for i in range(4)]
