"""Notebooks 05 and 06 run headless under papermill on a schema-shaped file (several models and
priors), stop naming the scoring stage when there is no scored table, and mark demo output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NB05 = ROOT / "notebooks" / "05_analysis_plots.ipynb"
NB06 = ROOT / "notebooks" / "06_downstream_icd.ipynb"
SMALL_06 = {"seeds": 1, "char_ngrams": False, "bootstrap": 100, "classifier": "tfidf-svm",
            "panel": ["tfidf-svm"]}

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory, data_dir) -> Path:
    """A published-schema CSV of 300 rows with four models and three priors."""
    from medsyn_utils.score.demo import schema_shaped_dataset

    path = tmp_path_factory.mktemp("input") / "scored-like.csv"
    schema_shaped_dataset(300, seed=5).to_csv(path, index=False)
    return path


def _run(notebook: Path, out: Path, parameters: dict) -> dict:
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(str(notebook), str(out.parent / f"{notebook.stem}.executed.ipynb"),
                               kernel_name="python3", parameters=parameters, cwd=str(notebook.parent),
                               progress_bar=False, execution_timeout=600)
    return json.loads((out / f"{notebook.stem}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("notebook", [NB05, NB06], ids=["05", "06"])
def test_without_a_scored_table_the_notebook_names_the_scoring_stage(tmp_path, data_dir, notebook):
    papermill = pytest.importorskip("papermill")
    run = tmp_path / "run"
    with pytest.raises(papermill.PapermillExecutionError, match="no scored.parquet in .*run the scoring stage"):
        _run(notebook, run, {"run_dir": str(run)})
    assert not (run / "figures").exists() and not (run / "downstream_metrics.json").exists()


def test_notebook_05_on_a_schema_shaped_file(tmp_path, schema_file):
    run = tmp_path / "run"
    record = _run(NB05, run, {"run_dir": str(run), "input_path": str(schema_file), "seed": 1})
    metrics = record["metrics"]
    assert metrics["rows"] == 300 and not metrics["demo"]
    assert metrics["generation_model_values"] == ["demo-model-a", "demo-model-b", "demo-model-c", "demo-model-d"]
    assert len(metrics["prior_values"]) == 3
    assert metrics["filter_groups"]["filter not applicable"] > 0  # code-only and symptom-only prompts
    assert metrics["figures_skipped"] == {} and len(metrics["figures_saved"]) == 8
    for name in metrics["figures_saved"]:
        assert (run / "figures" / f"{name}.png").is_file() and (run / "figures" / f"{name}.pdf").is_file()
    assert "DEMO DATA" not in (run / "figures" / "index.md").read_text(encoding="utf-8")
    assert record["parameters"]["input_path"] == str(schema_file)


def test_notebook_05_demo_is_marked(tmp_path, data_dir):
    run = tmp_path / "run"
    record = _run(NB05, run, {"run_dir": str(run), "demo": True, "demo_rows": 120, "compare_real": False})
    metrics = record["metrics"]
    assert metrics["demo"] and metrics["source"].startswith("DEMO DATA") and metrics["rows"] == 120
    assert record["parameters"]["demo"] is True
    assert "DEMO DATA" in (run / "figures" / "index.md").read_text(encoding="utf-8")


def test_notebook_06_on_a_schema_shaped_file_with_selection(tmp_path, schema_file, tiny_encoder_dir):
    run = tmp_path / "run"
    record = _run(NB06, run, {"run_dir": str(run), "synthetic_path": str(schema_file),
                              "models": ["demo-model-a"], "by_group": False, **SMALL_06,
                              "panel": ["tfidf-svm", "e5-logreg"], "embedding_encoder": str(tiny_encoder_dir),
                              "select": "symptoms_recall>=0.6"})
    metrics = record["metrics"]
    for key in ("real_only_test_acc@1", "real_synthetic_test_acc@3", "real_oversampled_test_acc@1",
                "real_class_weighted_test_acc@1"):
        assert 0.0 < metrics[key] < 1.0, key
    assert not metrics["demo"] and 0 < metrics["synthetic_rows_selected"] < 300
    saved = json.loads((run / "downstream_metrics.json").read_text(encoding="utf-8"))
    assert saved["synthetic"]["rows_before_selection"] == 300
    assert saved["synthetic"]["generation_model_counts"].keys() == {"demo-model-a"}
    assert saved["summary"]["real_synthetic_test_acc@1"] == metrics["real_synthetic_test_acc@1"]
    assert saved["demo"] is False and str(schema_file) in saved["synthetic_source"]
    assert set(saved["panel"]) == {"tfidf-svm", "e5-logreg"} and saved["verdicts"]["all selected notes"]
    assert "real_synthetic_random" in {e["setting"] for e in saved["settings"]}
    assert (run / "figures" / "downstream" / "per_code_change.png").is_file()
    assert (run / "reproduction.md").is_file() and (run / "reproduction.csv").is_file()


def test_notebook_06_demo_is_marked_and_filters_honestly(tmp_path, data_dir):
    run = tmp_path / "run"
    record = _run(NB06, run, {"run_dir": str(run), "demo": True, "demo_rows": 150, "use_filter": True,
                              "by_group": False, "controls": [], **SMALL_06})
    metrics = record["metrics"]
    assert metrics["demo"] and metrics["synthetic_input_rows"] == 150
    assert metrics["synthetic_failed_filter"] > 0 and metrics["synthetic_filter_not_applicable"] > 0
    saved = json.loads((run / "downstream_metrics.json").read_text(encoding="utf-8"))
    assert saved["demo"] is True and saved["synthetic_source"].startswith("DEMO DATA")
    assert "DEMO DATA" in (run / "figures" / "downstream" / "index.md").read_text(encoding="utf-8")
    assert "DEMO DATA" in (run / "reproduction.md").read_text(encoding="utf-8")
