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
                     "--models", "demo-model-a,demo-model-b", "--priors", "symptoms+anamnesis,symptoms", "--no-char-ngrams", "--bootstrap", "100",
                     "--classifier", "tfidf-svm", "--panel", "", "--controls", "oversampled,class_weighted",
                     "--seeds", "1", "--json"])
    assert code == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # --json: stdout holds only JSON
    assert "real_only_test_acc@1" in printed["summary"]
    assert "95 % CI" in captured.err and "selected per generation_model" in captured.err
    assert "verdict [all selected notes]" in captured.err and "verdicts" in printed
    metrics = json.loads((out / "downstream_metrics.json").read_text(encoding="utf-8"))
    counts = metrics["synthetic"]
    assert set(counts["generation_model_counts"]) == {"demo-model-a", "demo-model-b"}
    assert counts["kept"] + counts["outside_task_codes"] + counts["leaked_dev_test"] == counts["rows_selected"]
    assert counts["leakage"]["checks"]["example_visit_id"].startswith("ran")
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


def _small(*extra: str) -> list[str]:
    return ["--no-char-ngrams", "--classifier", "tfidf-svm", "--panel", "", "--controls", "",
            "--seeds", "1", "--no-figures", *extra]


@pytest.mark.parametrize("case", ["codes", "empty", "filtered", "select"])
def test_an_experiment_without_synthetic_notes_stops_with_the_counts(tmp_path, demo_csv, capsys, case):
    """Issue 24 cases 4–6 and --select with 0 notes: today these ran and reported a real_synthetic
    setting identical to real_only as "Δ +0.0"; now one line with the counts at each step."""
    from medsyn_utils.cli import app as cli

    frame = pd.read_csv(demo_csv)
    extra: list[str] = []
    if case == "codes":
        frame["ICD-10"] = "Z99.9"
    elif case == "empty":
        frame["response"] = ""
    elif case == "filtered":
        frame["passed_filter"] = False
        extra = ["--use-filter"]
    else:
        extra = ["--select", "symptoms_recall>=2"]
    path = tmp_path / "synthetic.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    code = cli.main(["downstream", "--synthetic", str(path), "--out", str(out), *_small(*extra)])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and not (out / "reproduction.md").exists()
    assert "no synthetic notes" in err and f"{len(frame)} read" in err
    expected = {"codes": f"{len(frame)} outside: Z99.9 ×{len(frame)}", "empty": f"({len(frame)} empty)",
                "filtered": "0 passed the filter", "select": "0 passing select 'symptoms_recall>=2'"}[case]
    assert expected in err


@pytest.mark.parametrize("flags, why", [
    (["--bootstrap", "50"], "bootstrap=50"), (["--bootstrap", "-1"], "bootstrap=-1"),
    (["--use-filter", "--recall-threshold", "7"], "recall_threshold=7"),
    (["--seeds", "0"], "seeds=0"), (["--select", "nope>=1"], "no column 'nope'")])
def test_bad_numbers_are_refused_before_any_fit(tmp_path, demo_csv, capsys, flags, why):
    from medsyn_utils.cli import app as cli

    code = cli.main(["downstream", "--synthetic", str(demo_csv), "--out", str(tmp_path / "o"), *_small(*flags)])
    err = capsys.readouterr().err
    assert code != 0 and why in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bootstrap_zero_says_no_intervals(tmp_path, demo_csv, capsys):
    from medsyn_utils.cli import app as cli

    out = tmp_path / "out"
    assert cli.main(["downstream", "--synthetic", str(demo_csv), "--out", str(out),
                     *_small("--bootstrap", "0", "--no-by-group")]) == 0
    printed = capsys.readouterr().out
    assert "no interval" in printed and "nan" not in printed.lower()
    text = (out / "reproduction.md").read_text(encoding="utf-8")
    assert "No intervals: bootstrap 0" in text and "nan" not in text.lower()
    metrics = json.loads((out / "downstream_metrics.json").read_text(encoding="utf-8"))
    assert metrics["intervals"].startswith("none")
    assert "NaN" not in (out / "downstream_metrics.json").read_text(encoding="utf-8")


def test_panel_select_and_controls_on_the_real_mirror(tmp_path, demo_csv, tiny_encoder_dir):
    """The panel (two TF-IDF classifiers and the embedding one on the tiny encoder), a selection
    with its all-notes and random same-size controls, recombined on by default, 3 seeds."""
    from medsyn_utils.analysis.downstream_figures import write_downstream_figures
    from medsyn_utils.downstream.study import run_study

    study = run_study(demo_csv, tmp_path, classifier="tfidf-svm",
                      classifier_options={"char_ngrams": None},
                      panel=["tfidf-svm", "e5-logreg"], panel_options={
                          "e5-logreg": {"encoder": str(tiny_encoder_dir), "C": 1.0}},
                      select="symptoms_recall>=0.6", seeds=3, n_bootstrap=100, by_group=False,
                      progress=False)
    metrics = study.metrics
    assert set(metrics["panel"]) == {"tfidf-svm", "e5-logreg"}
    counts = metrics["synthetic"]
    assert 0 < counts["kept_selected"] < counts["kept"]
    settings = {e["setting"]: e for e in metrics["panel"]["e5-logreg"]["settings"]}
    assert {"real_recombined", "real_synthetic_unselected", "real_synthetic_random"} <= set(settings)
    assert settings["real_synthetic_random"]["fits"] == 3 and settings["real_recombined"]["fits"] == 3
    assert settings["real_synthetic_random"]["n_train_added"] == counts["kept_selected"]
    assert settings["real_only"]["fits"] == 1
    verdicts = metrics["verdicts"]["all selected notes"]
    names = {(v["difference"], v["codes"]) for v in verdicts}
    assert {("real_synthetic − real_recombined", "all_codes"),
            ("real_synthetic − real_synthetic_random", "all_codes"),
            ("real_synthetic − real_oversampled", "hard_rarest_quartile")} <= names
    assert all(v["verdict"] in ("helps", "hurts", "not shown") for v in verdicts)
    hard = report_entry = next(c for c in metrics["comparisons"] if c["base"] == "real_only"
                               and c["other"] == "real_synthetic")["hard_rarest_quartile"]
    assert hard["resampled"] == "codes" and report_entry["n_codes"] > 1
    text = (tmp_path / "reproduction.md").read_text(encoding="utf-8")
    assert "random same-size" in text and "e5-logreg" in text and "**Verdict (all selected notes)" in text
    records = write_downstream_figures(metrics, study.per_code, tmp_path / "figures")
    assert all(not r.skipped for r in records)
    assert "symptoms_recall>=0.6" in (tmp_path / "figures" / "index.md").read_text(encoding="utf-8")
