"""Report: paired intervals, Benjamini–Hochberg, metrics without fake seed spreads, the reproduction table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.downstream import report
from medsyn_utils.downstream.experiment import ExperimentResult, experiment_settings, run_settings


def _known() -> ExperimentResult:
    def block(rows):
        return {"test": {k: np.array(rows, dtype=bool) for k in (1, 3, 5)},
                "dev": {k: np.array(rows, dtype=bool) for k in (1, 3, 5)}}
    return ExperimentResult(
        runs=pd.DataFrame(), codes={"test": np.array(["A", "A", "B", "B"]), "dev": np.array(["A", "A", "B", "B"])},
        train_codes=np.array(["A", "B"]), classifier={},
        correctness={"real_only": block([[1, 0, 0, 0]]), "real_synthetic": block([[1, 1, 0, 1], [1, 1, 0, 0]])})


def test_group_change_on_known_correctness():
    result = _known()
    out = report.group_change(result, ["B"], ks=(1,), n_bootstrap=100)
    assert out["n_test"] == 2 and out["acc@1"]["real_only"] == 0.0
    assert out["acc@1"]["real_synthetic"] == 0.25 and out["acc@1"]["change"] == 0.25
    assert out["acc@1"]["relative_change_pct"] is None  # no relative change from a base of 0
    everything = report.group_change(result, None, ks=(1,), n_bootstrap=200)
    assert everything["acc@1"]["change"] == pytest.approx(0.625 - 0.25)
    assert everything["acc@1"]["ci_low"] <= 0.375 <= everything["acc@1"]["ci_high"]
    with pytest.raises(report.ParameterError, match="not run"):
        report.group_change(result, None, other="synthetic_only")


def test_benjamini_hochberg_against_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted 0.01 0.03 0.04 0.20 → ×4/rank: 0.04 0.06 0.0533 0.20 → running min from the top
    assert report.benjamini_hochberg(p).tolist() == pytest.approx([0.04, 0.0533333, 0.0533333, 0.20])
    assert report.benjamini_hochberg([]).size == 0
    assert report.sign_test(np.array([0, 0, 0]), np.array([1, 1, 1])) == pytest.approx(0.25)
    assert report.sign_test(np.array([1, 0]), np.array([1, 0])) == 1.0


def test_metrics_comparisons_per_code_and_reproduction_table(toy, fast, tmp_path):
    real, dev, test, synthetic = toy(12, 0), toy(4, 1), toy(5, 2), toy(6, 3, noise="пациент отмечает")
    result = run_settings(real, dev, test, synthetic, settings=experiment_settings(False), seeds=2,
                          make_model=fast, progress=False)
    hard = {"rarest_quartile": ["J06"], "lowest_dev_accuracy": ["I10", "K29"]}
    metrics = report.build_metrics(result, {"kept": len(synthetic)}, hard=hard, n_bootstrap=200)
    json.dumps(metrics)  # serialisable
    settings = {e["setting"]: e for e in metrics["settings"]}
    assert settings["real_only"]["fits"] == 1 and "test_sd_over_seeds" not in settings["real_only"]
    assert settings["real_oversampled"]["fits"] == 2 and "test_sd_over_seeds" in settings["real_oversampled"]
    pairs = {(c["other"], c["base"]) for c in metrics["comparisons"]}
    assert {("real_synthetic", "real_only"), ("real_oversampled", "real_only"),
            ("real_class_weighted", "real_only"), ("real_synthetic", "real_oversampled")} <= pairs
    main = report.find_comparison(metrics, "real_synthetic")
    assert {"all_codes", "hard_rarest_quartile", "hard_lowest_dev_accuracy"} <= set(main)
    assert main["hard_rarest_quartile"]["n_codes"] == 1
    per_code = pd.DataFrame(metrics["per_code"]["rows"])
    assert {"q_bh", "p_sign_test", "hard_rarest_quartile", "ci_low", "ci_high"} <= set(per_code.columns)
    assert (per_code["q_bh"] >= per_code["p_sign_test"] - 1e-12).all()
    numbers = report.stage_metrics(metrics)
    assert "real_synthetic_vs_real_only_all_codes_change_acc@1_ci" in numbers
    row = report.reproduction_row(metrics, {"generation_model": "m", "prior": "p"})
    assert row["real_only acc@1"] == metrics["summary"]["real_only_test_acc@1"]
    assert row["real_synthetic − real_only acc@1 ci"].startswith("[")
    paths = report.write_reproduction([row], tmp_path, metrics["classifier"])
    table = pd.read_csv(paths["reproduction.csv"])
    assert table.loc[0, "prior"] == "p" and "real_oversampled acc@5" in table.columns
    text = (tmp_path / "reproduction.md").read_text(encoding="utf-8")
    assert "## m / p" in text and "paired bootstrap" in text and "cluster bootstrap over codes" in text
    assert "**Verdict (m / p): adding the notes" in text and "| oversampled | all |" in text


def test_verdict_needs_every_classifier_of_the_panel():
    assert report.verdict([(0.01, 0.03), (0.002, 0.04)]) == "helps"
    assert report.verdict([(-0.03, -0.01), (-0.05, -0.001)]) == "hurts"
    assert report.verdict([(0.01, 0.03), (-0.012, 0.018)]) == "not shown"
    assert report.verdict([(0.01, 0.03), (None, None)]).startswith("not shown")


def _row(classifier, change, low, high):
    key = "real_synthetic − real_only acc@1"
    return {"group": "all", "classifier": classifier, key: change, f"{key} ci": report.format_interval(low, high)}


def test_verdict_is_not_shown_when_two_classifiers_disagree_in_sign():
    """Constructed metrics: the SVM sees a significant gain, the logistic regression a significant
    loss; a third one agrees with the SVM. The verdict must not say "helps"."""
    rows = [_row("tfidf-svm", 0.016, 0.001, 0.032), _row("tfidf-logreg", -0.02, -0.035, -0.004),
            _row("e5-logreg", 0.01, 0.002, 0.02)]
    (entry,) = report.group_verdicts(rows)
    assert entry["verdict"] == "not shown"
    assert entry["per_classifier"] == {"tfidf-svm": 0.016, "tfidf-logreg": -0.02, "e5-logreg": 0.01}
    text = report.reproduction_markdown(rows, {"name": "tfidf-svm"})
    assert "**Verdict (all): adding the notes not shown**" in text
    assert "+1.6 [+0.1, +3.2]" in text and "−" in text
    agreeing = [_row("tfidf-svm", 0.016, 0.001, 0.032), _row("tfidf-logreg", 0.01, 0.001, 0.02)]
    assert report.group_verdicts(agreeing)[0]["verdict"] == "helps"


def test_cluster_bootstrap_is_wider_than_the_visit_bootstrap_with_correlated_visits():
    """20 codes × 10 visits; within a code every visit moves together (all gain or all lose), so the
    effective sample is 20 codes, not 200 visits: resampling codes must give a wider interval."""
    rng = np.random.default_rng(0)
    codes = np.repeat([f"C{i}" for i in range(20)], 10)
    code_effect = np.repeat(rng.choice([1, -1, 0], size=20, p=[0.4, 0.3, 0.3]), 10)
    base = np.zeros(200)
    other = code_effect.astype(float)  # -1, 0 or +1 for every visit of a code
    visit_low, visit_high = report.paired_bootstrap(base, other, 2000, np.random.default_rng(1))
    code_low, code_high = report.cluster_bootstrap(base, other, codes, 2000, np.random.default_rng(1))
    assert code_low <= other.mean() <= code_high
    assert (code_high - code_low) > 1.8 * (visit_high - visit_low)
    # independent visits: the two agree roughly
    flat = rng.choice([1.0, -1.0, 0.0], size=200)
    v = report.paired_bootstrap(base, flat, 2000, np.random.default_rng(2))
    c = report.cluster_bootstrap(base, flat, codes, 2000, np.random.default_rng(2))
    assert 0.6 < (c[1] - c[0]) / (v[1] - v[0]) < 1.6


def test_hard_code_changes_resample_codes_and_keep_their_n():
    result = _known()
    out = report.group_change(result, ["A", "B"], ks=(1,), n_bootstrap=200)
    assert out["resampled"] == "codes" and out["n_codes"] == 2 and out["n_test"] == 4
    assert report.group_change(result, None, ks=(1,), n_bootstrap=200)["resampled"] == "visits"


def test_bootstrap_zero_means_no_intervals_and_1_to_99_is_refused():
    result = _known()
    out = report.group_change(result, None, ks=(1,), n_bootstrap=0)
    assert out["acc@1"]["ci_low"] is None and out["acc@1"]["ci_high"] is None
    metrics = report.build_metrics(result, {"kept": 3}, hard={"rarest_quartile": ["B"]}, n_bootstrap=0)
    assert metrics["intervals"].startswith("none (bootstrap 0")
    text = json.dumps(metrics)
    assert "NaN" not in text
    row = report.reproduction_row(metrics, {"group": "g"})
    assert row["real_synthetic − real_only acc@1 ci"] == "no interval"
    markdown = report.reproduction_markdown([row], {"name": "x"})
    assert "no interval" in markdown and "nan" not in markdown.lower()
    assert report.check_bootstrap(0) == 0 and report.check_bootstrap(100) == 100
    for bad in (1, 50, 99, -5, 2.5, True):
        with pytest.raises(report.ParameterError, match="0 for no intervals"):
            report.check_bootstrap(bad)


def test_random_controls_show_mean_and_spread_over_seeds_beside_the_interval(toy, fast):
    real, dev, test, synthetic = toy(12, 0), toy(4, 1), toy(5, 2), toy(6, 3, noise="пациент отмечает")
    result = run_settings(real, dev, test, synthetic,
                          settings=experiment_settings(False, ("oversampled", "recombined")), seeds=3,
                          make_model=fast, progress=False)
    metrics = report.build_metrics(result, {"kept": len(synthetic)}, hard={}, n_bootstrap=100)
    row = report.reproduction_row(metrics, {"group": "g"})
    assert row["real_recombined acc@1 sd over 3 seeds"] >= 0
    text = report.reproduction_markdown([row], metrics["classifier"])
    recombined = next(line for line in text.splitlines() if line.startswith("| recombined | all |"))
    assert "over 3 seeds" in recombined and "control acc@1" in recombined
    only = next(line for line in text.splitlines() if line.startswith("| real only | all |"))
    assert "seeds" not in only  # real only is one deterministic fit: no spread
