"""Notebook 04 scores a small hand-made store headless under papermill and records its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medsyn_utils.core.schema import STORE_FIELDS, TASK_COLUMNS
from medsyn_utils.testing.tiny import SENTENCES

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "04_bertscore_evaluation.ipynb"

pytestmark = pytest.mark.notebooks

KINDS = ["symptoms+example", "symptoms", "code", "symptoms+example", "symptoms+example"]
SYMPTOMS = [["головная боль", "слабость"], ["кашель", "насморк"], [], ["давление"], ["изжога"]]
RESPONSES = [SENTENCES[0], SENTENCES[1], SENTENCES[2], "", SENTENCES[4] + " *ДАТА*"]
EXAMPLES = [SENTENCES[3], None, None, SENTENCES[5], SENTENCES[4] + " *ДАТА*"]  # the last is copied


def _write_inputs(run: Path) -> None:
    run.mkdir(parents=True)
    tasks = pd.DataFrame([{
        "task_id": f"t{i:06d}", "icd10": "J06.9", "category": "J06", "code_name_ru": "Острый назофарингит",
        "prompt_kind": kind, "prompt_variant": "style", "symptoms": SYMPTOMS[i],
        "example_visit_id": None if EXAMPLES[i] is None else f"q{i}", "example_text": EXAMPLES[i],
        "example_source": None if EXAMPLES[i] is None else "RuMedTop3-train", "sex": "male", "age": 40,
        "location": "city", "marital_status": "married", "smoking": False, "system_prompt": "s",
        "user_prompt": "u", "completion_prompt": "c", "seed": 0} for i, kind in enumerate(KINDS)],
        columns=list(TASK_COLUMNS))
    tasks.to_parquet(run / "tasks.parquet", index=False)
    with (run / "generations.jsonl").open("w", encoding="utf-8") as handle:
        for i, response in enumerate(RESPONSES):
            record = {name: None for name in STORE_FIELDS}
            record.update(task_id=f"t{i:06d}", model_id="tiny-lm", prompt=f"prompt {i}",
                          response=response, finish_reason="stop")
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def test_notebook_04_scores_the_store_and_records_metrics(tmp_path, tiny_encoder_dir, data_dir):
    papermill = pytest.importorskip("papermill")
    run = tmp_path / "run"
    _write_inputs(run)
    papermill.execute_notebook(
        str(NOTEBOOK), str(tmp_path / "04.ipynb"), kernel_name="python3",
        parameters={"run_dir": str(run), "encoder": str(tiny_encoder_dir), "layer": 2,
                    "calibration_size": 6, "paper_encoder": "", "assumed_percentile": 20.0,
                    "copy_threshold": 0.5, "show_notes": 2},
        cwd=str(NOTEBOOK.parent), progress_bar=False, execution_timeout=600)
    record = json.loads((run / "04_bertscore_evaluation.json").read_text(encoding="utf-8"))
    metrics = record["metrics"]
    assert metrics["rows"] == 5 and metrics["empty_responses"] == 1
    assert metrics["memorised"] == 1 and metrics["placeholders_copied_rows"] == 1
    assert metrics["input"].startswith("generation store")
    assert [row["score"] for row in metrics["calibration"]] == ["symptoms_recall", "anamnesis_precision"]
    assert all(row["percentile"] == 20.0 for row in metrics["calibration"])
    used = metrics["thresholds_used"]
    assert used["symptoms_recall"] == metrics["calibration"][0]["mapped_threshold"]
    assert record["models"]["bertscore_hash"].split("_L2_")[0].endswith("model")
    assert record["parameters"]["layer"] == 2 and record["artefacts"]["scored.csv"]["rows"] == 5
    scored = pd.read_parquet(run / "scored.parquet")
    assert len(scored) == 5 and (run / "scored.csv").is_file()
    assert scored["passed_filter"].sum() == metrics["passed"]
    assert not scored.loc[3, "passed_filter"]  # the empty response
    assert scored["anamnesis_precision"].isna().tolist() == [False, True, True, False, False]
