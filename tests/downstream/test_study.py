"""The whole study on the real RuMedTop3 mirror and a demo table: selection, groups, files, CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory, data_dir):
    from medsyn_utils.score.demo import schema_shaped_dataset

    path = tmp_path_factory.mktemp("demo") / "synthetic.csv"
    schema_shaped_dataset(160, seed=1, extra_columns=True).to_csv(path, index=False)
    return path


def test_cli_with_selection_writes_metrics_reproduction_and_figures(tmp_path, demo_csv, capsys):
    from medsyn_utils.cli import app as cli

    out = tmp_path / "out"
    code = cli.main(["downstream", "--synthetic", str(demo_csv), "--out", str(out),
                     "--models", "demo-model-a,demo-model-b", "--priors", "symptoms+anamnesis,symptoms", "--no-char-ngrams", "--bootstrap", "50",
                     "--json"])
    assert code == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # --json: stdout holds only JSON
    assert "real_only_test_acc@1" in printed["summary"]
    assert "paired 95 % CI" in captured.err and "selected per generation_model" in captured.err
    metrics = json.loads((out / "downstream_metrics.json").read_text(encoding="utf-8"))
    counts = metrics["synthetic"]
    assert set(counts["generation_model_counts"]) == {"demo-model-a", "demo-model-b"}
    assert counts["kept"] + counts["outside_task_codes"] + counts["leaked_dev_test"] == counts["rows_selected"]
    assert counts["leakage"]["checks"]["example_visit_id"] == "ran"
    assert metrics["selection"]["models"] == ["demo-model-a", "demo-model-b"]
    assert 0.2 < metrics["summary"]["real_only_test_acc@1"] < 0.7
    assert set(metrics["hard_codes"]) == {"rarest_quartile", "lowest_dev_accuracy"}
    table = pd.read_csv(out / "reproduction.csv")
    assert table.loc[0, "group"] == "all selected notes"
    assert set(table["generation_model"].dropna()) == {"demo-model-a", "demo-model-b"}
    assert (out / "reproduction.md").is_file()
    for name in ("accuracy_per_setting", "changes_vs_base", "per_code_change"):
        assert (out / "figures" / "downstream" / f"{name}.png").is_file()


def test_cli_use_filter_on_an_unscored_table_is_one_line(tmp_path, demo_csv, capsys):
    from medsyn_utils.cli import app as cli

    frame = pd.read_csv(demo_csv).drop(columns=["symptoms_recall", "anamnesis_precision", "passed_filter",
                                                "filter_applies"])
    path = tmp_path / "unscored.csv"
    frame.to_csv(path, index=False)
    code = cli.main(["downstream", "--synthetic", str(path), "--out", str(tmp_path / "o"), "--use-filter"])
    err = capsys.readouterr().err
    assert code != 0 and "medsyn score" in err and "Traceback" not in err
