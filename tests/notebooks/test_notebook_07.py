"""Notebook 07 (LoRA fine-tuning) runs headless with smoke parameters on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.notebooks
def test_finetune_notebook_smoke(tmp_path, tiny_lm_dir, tiny_encoder_dir, data_dir):
    import papermill as pm

    run = tmp_path / "run"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "07_finetune.ipynb"), str(tmp_path / "07.ipynb"),
        parameters={"run_dir": str(run), "base_model": str(tiny_lm_dir),
                    "encoder": str(tiny_encoder_dir), "encoder_layer": 2, "max_steps": 3,
                    "max_records": 12, "eval_tasks": 2, "eval_max_new_tokens": 8,
                    "learning_rate": 0.01},
        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False,
        execution_timeout=600)
    record = json.loads((run / "07_finetune.json").read_text(encoding="utf-8"))
    metrics = record["metrics"]
    assert metrics["steps"] == 3 and 0 < metrics["examples"] <= 12  # records too long for max_length drop out
    assert metrics["ift_counts"]["records_total"] > 1000
    assert {row["model"] for row in metrics["comparison"]} == {"base", "fine-tuned"}
    assert (run / "finetune" / "adapter" / "adapter_config.json").is_file()
    assert (run / "finetune" / "loss_curve.png").is_file()
    first = json.loads((run / "ift.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"instruction", "input", "output"}
