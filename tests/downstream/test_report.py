"""Report: paired intervals, Benjamini–Hochberg, metrics without fake seed spreads, the reproduction table."""

from __future__ import annotations

import json
import math

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
    assert math.isnan(out["acc@1"]["relative_change_pct"])
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
    assert "| m / p |" in text and "paired bootstrap" in text
