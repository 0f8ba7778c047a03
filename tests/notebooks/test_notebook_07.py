"""Notebook 07 (LoRA fine-tuning) runs headless with smoke parameters on tiny models; its
comparison tasks are held out from the export; without the scoring stage's notes it stops."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "07_finetune.ipynb"


def _execute(tmp_path: Path, parameters: dict) -> None:
    import papermill as pm

    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "07.ipynb"), parameters=parameters,
                        kernel_name="python3", cwd=str(NOTEBOOK.parent), progress_bar=False,
                        execution_timeout=600)


@pytest.mark.notebooks
def test_finetune_notebook_smoke(tmp_path, tiny_lm_dir, tiny_encoder_dir, data_dir):
    run = tmp_path / "run"
    _execute(tmp_path, {"run_dir": str(run), "base_model": str(tiny_lm_dir), "synthetic": False,
                        "encoder": str(tiny_encoder_dir), "encoder_layer": 2, "max_steps": 3,
                        "max_records": 12, "eval_tasks": 2, "eval_max_new_tokens": 8,
                        "learning_rate": 0.01})
    record = json.loads((run / "07_finetune.json").read_text(encoding="utf-8"))
    metrics = record["metrics"]
    assert metrics["steps"] == 3 and 0 < metrics["examples"] <= 12  # records too long for max_length drop out
    assert metrics["ift_counts"]["records_total"] > 1000 and metrics["synthetic"] is False
    assert {row["model"] for row in metrics["comparison"]} == {"base", "fine-tuned"}
    assert (run / "finetune" / "adapter" / "adapter_config.json").is_file()
    assert (run / "finetune" / "loss_curve.png").is_file()
    first = json.loads((run / "ift.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"instruction", "input", "output"}
    # the comparison's style examples are real visits, none of them in the instruction export
    card = json.loads((run / "ift.card.json").read_text(encoding="utf-8"))
    compared = pd.read_parquet(run / "finetune" / "eval" / "tasks.parquet")
    examples = set(compared["example_visit_id"].dropna())
    assert len(examples) == len(compared) == 2
    assert not examples & set(card["visit_ids"])
    assert len(card["visit_ids"]) > 1000


@pytest.mark.notebooks
def test_finetune_notebook_without_scored_notes_names_the_scoring_stage(tmp_path, data_dir):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as raised:
        _execute(tmp_path, {"run_dir": str(tmp_path / "fresh")})
    assert raised.value.ename == "MissingInputError"
    assert "no scored.parquet" in raised.value.evalue and "scoring stage" in raised.value.evalue
    assert not (tmp_path / "fresh" / "ift.jsonl").exists()
