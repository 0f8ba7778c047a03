"""Notebooks 05 and 06 run headless under papermill on a schema-shaped file of a few hundred rows
(several models and priors) and on their own default (demo) input, and record their numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NB05 = ROOT / "notebooks" / "05_analysis_plots.ipynb"
NB06 = ROOT / "notebooks" / "06_downstream_icd.ipynb"

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory, data_dir) -> Path:
    """A published-schema CSV of 300 rows with four models and three priors."""
    from medsyn_utils.testing.demo import schema_shaped_dataset

    path = tmp_path_factory.mktemp("input") / "scored-like.csv"
    schema_shaped_dataset(300, seed=5).to_csv(path, index=False)
    return path


def _run(notebook: Path, out: Path, parameters: dict) -> dict:
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(str(notebook), str(out.parent / f"{notebook.stem}.executed.ipynb"),
                               kernel_name="python3", parameters=parameters, cwd=str(notebook.parent),
                               progress_bar=False, execution_timeout=600)
    return json.loads((out / f"{notebook.stem}.json").read_text(encoding="utf-8"))


def test_notebook_05_on_a_schema_shaped_file(tmp_path, schema_file):
    run = tmp_path / "run"
    record = _run(NB05, run, {"run_dir": str(run), "input_path": str(schema_file), "seed": 1})
    metrics = record["metrics"]
    assert metrics["rows"] == 300 and not metrics["demo"]
    assert metrics["generation_model_values"] == ["GPT-3.5", "GPT-4", "LLaMA-13b", "LLaMA-7b"]
    assert len(metrics["prior_values"]) == 3
    assert metrics["figures_skipped"] == {} and len(metrics["figures_saved"]) == 8
    for name in metrics["figures_saved"]:
        assert (run / "figures" / f"{name}.png").is_file() and (run / "figures" / f"{name}.pdf").is_file()
    assert (run / "figures" / "index.md").is_file()
    assert record["parameters"]["input_path"] == str(schema_file)


def test_notebook_05_default_falls_back_to_the_demo_and_uses_scoring_thresholds(tmp_path, data_dir):
    run = tmp_path / "run"
    run.mkdir()
    (run / "04_bertscore_evaluation.json").write_text(json.dumps(
        {"metrics": {"thresholds_used": {"symptoms_recall": 0.6, "anamnesis_precision": 0.75}}}))
    record = _run(NB05, run, {"run_dir": str(run), "demo_rows": 120, "compare_real": False})
    metrics = record["metrics"]
    assert metrics["demo"] and metrics["source"].startswith("DEMO TABLE") and metrics["rows"] == 120
    assert metrics["thresholds"] == {"symptoms_recall": 0.6, "anamnesis_precision": 0.75}


def test_notebook_06_on_a_schema_shaped_file_with_the_grid(tmp_path, schema_file):
    run = tmp_path / "run"
    record = _run(NB06, run, {"run_dir": str(run), "synthetic_path": str(schema_file), "seeds": 1,
                              "grid": True, "char_ngrams": False, "max_features": 3000, "bootstrap": 100})
    metrics = record["metrics"]
    for key in ("real_only_test_acc@1", "real_only_test_acc@3", "real_synthetic_test_acc@1",
                "real_synthetic_test_acc@3"):
        assert 0.0 < metrics[key] < 1.0, key
    assert metrics["real_only_test_acc@3"] >= metrics["real_only_test_acc@1"]
    assert len(metrics["settings_run"]) == 9 and not metrics["demo"]
    assert metrics["synthetic_input_rows"] == 300
    assert metrics["synthetic_kept"] + metrics["synthetic_outside_task_codes"] \
        + metrics["synthetic_style_example_is_dev_test"] + metrics["synthetic_text_equals_dev_test"] == 300
    saved = json.loads((run / "downstream_metrics.json").read_text(encoding="utf-8"))
    assert saved["summary"]["real_synthetic_test_acc@1"] == metrics["real_synthetic_test_acc@1"]
    assert (run / "figures" / "downstream" / "per_code_change.png").is_file()


def test_notebook_06_default_input_is_the_demo(tmp_path, data_dir):
    run = tmp_path / "run"
    record = _run(NB06, run, {"run_dir": str(run), "seeds": 1, "char_ngrams": False, "max_features": 3000,
                              "bootstrap": 50, "demo_rows": 150, "use_filter": True})
    metrics = record["metrics"]
    assert metrics["demo"] and metrics["synthetic_input_rows"] == 150
    assert metrics["synthetic_failed_filter"] > 0
    assert set(metrics["settings_run"]) == {"real_only", "real_synthetic", "synthetic_only"}
