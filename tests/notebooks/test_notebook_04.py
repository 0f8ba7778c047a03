"""Notebook 04 scores a small hand-made store headless under papermill and records its numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medsyn_utils.core import artefacts
from medsyn_utils.core.schema import STORE_FIELDS, TASK_COLUMNS
from medsyn_utils.testing.tiny import SENTENCES

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "04_bertscore_evaluation.ipynb"

pytestmark = pytest.mark.notebooks

KINDS = ["symptoms+example", "symptoms", "code", "symptoms+example", "symptoms+example", "symptoms"]
SYMPTOMS = [["головная боль", "слабость"], ["кашель", "насморк"], [], ["давление"], ["изжога"], ["x"]]
RESPONSES = [SENTENCES[0], SENTENCES[1], SENTENCES[2], "", SENTENCES[4] + " *ДАТА*"]
EXAMPLES = [SENTENCES[3], None, None, SENTENCES[5], SENTENCES[4] + " *ДАТА*", None]  # [4] is copied
# t000005 is in the store as failed (finish_reason "error"): left out and counted.


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
    prints = artefacts.task_fingerprints(tasks)
    with (run / "generations.jsonl").open("w", encoding="utf-8") as handle:
        for i, response in enumerate([*RESPONSES, "x"]):
            record = {name: None for name in STORE_FIELDS}
            record.update(task_id=f"t{i:06d}", model_id="tiny-lm", prompt=f"prompt {i}",
                          response=response, finish_reason="error" if i == len(RESPONSES) else "stop",
                          task_fingerprint=prints[f"t{i:06d}"])
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
    assert metrics["input"].startswith("generation store") and metrics["demo"] is False
    assert metrics["failed_notes_excluded"] == {"error": 1}
    assert metrics["filter_groups"]["code-only"] == {"notes": 1, "passed": 0}
    assert [row["score"] for row in metrics["calibration"]] == ["symptoms_recall", "anamnesis_precision"]
    assert all(row["percentile"] == 20.0 for row in metrics["calibration"])
    used = metrics["thresholds_used"]
    assert used["symptoms_recall"] == metrics["calibration"][0]["mapped_threshold"]
    assert record["models"]["bertscore_hash"].split("_L2_")[0].endswith("model")
    # precision "auto" (the default) is recorded as what it resolved to, and the hash says it too
    from medsyn_utils.score.scorer import resolve_precision
    assert record["models"]["precision"] == resolve_precision("auto", "cpu")
    assert record["models"]["bertscore_hash"].endswith("_bf16-mixed") == (record["models"]["precision"] == "bf16")
    assert record["parameters"]["layer"] == 2 and record["artefacts"]["scored.csv"]["rows"] == 5
    scored = pd.read_parquet(run / "scored.parquet")
    assert len(scored) == 5 and (run / "scored.csv").is_file()
    assert scored["passed_filter"].sum() == metrics["passed"]
    assert not scored.loc[3, "passed_filter"]  # the empty response
    assert scored["anamnesis_precision"].isna().tolist() == [False, True, True, False, False]
    assert scored["filter_applies"].tolist() == [True, True, False, True, True]


def test_notebook_04_without_generations_names_the_stage_unless_demo(tmp_path, tiny_encoder_dir,
                                                                     data_dir):
    papermill = pytest.importorskip("papermill")
    run = tmp_path / "run"
    run.mkdir()
    common = {"run_dir": str(run), "encoder": str(tiny_encoder_dir), "layer": 2, "calibrate": False,
              "show_notes": 1}
    with pytest.raises(papermill.PapermillExecutionError, match="generation stage"):
        papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "no.ipynb"), kernel_name="python3",
                                   parameters=common, cwd=str(NOTEBOOK.parent), progress_bar=False,
                                   execution_timeout=600)
    assert not (run / "scored.parquet").exists()
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "demo.ipynb"), kernel_name="python3",
                               parameters={**common, "demo": True, "demo_size": 3},
                               cwd=str(NOTEBOOK.parent), progress_bar=False, execution_timeout=600)
    record = json.loads((run / "04_bertscore_evaluation.json").read_text(encoding="utf-8"))
    assert record["parameters"]["demo"] is True and record["metrics"]["demo"] is True
    assert record["metrics"]["input"].startswith("DEMO DATA")
    assert set(pd.read_parquet(run / "scored.parquet")["generation_model"]) == {"demo-real-notes"}
