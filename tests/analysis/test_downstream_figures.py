"""Downstream figures: drawn from the metrics, intervals as error bars, a missing input skipped with the reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medsyn_utils.analysis.downstream_figures import write_downstream_figures


def _metrics(demo: bool) -> dict:
    acc = {"acc@1": 0.4, "acc@3": 0.7, "acc@5": 0.8}
    change = {f"acc@{k}": {"change": 0.01, "ci_low": -0.01, "ci_high": 0.03} for k in (1, 3, 5)}
    return {"demo": demo, "synthetic_source": "file x.csv",
            "settings": [{"setting": "real_only", "fits": 1, "test": acc},
                         {"setting": "real0.5_syn0.5", "fits": 3, "test": acc,
                          "test_sd_over_seeds": {k: 0.01 for k in acc}}],
            "comparisons": [{"other": "real_synthetic", "base": "real_only", "all_codes": change,
                             "hard_rarest_quartile": change}]}


def test_downstream_figures_and_index(tmp_path):
    per_code = pd.DataFrame({"code": ["A", "B", "C"], "change": [0.1, 0.0, -0.1], "ci_low": [0.0, -0.1, -0.2],
                             "ci_high": [0.2, 0.1, 0.0], "hard_rarest_quartile": [True, False, False],
                             "significant_bh_0.05": [False, False, False]})
    records = write_downstream_figures(_metrics(False), per_code, tmp_path)
    assert [r.name for r in records] == ["accuracy_per_setting", "changes_vs_base", "per_code_change"]
    assert all(not r.skipped for r in records)
    for record in records:
        assert (tmp_path / f"{record.name}.png").stat().st_size > 1000
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "DEMO DATA" not in index and "file x.csv" in index


def test_missing_comparisons_and_per_code_are_skipped_with_the_reason_and_demo_is_marked(tmp_path):
    metrics = _metrics(True)
    metrics["comparisons"] = []
    records = write_downstream_figures(metrics, None, tmp_path)
    skipped = {r.name: r.skipped for r in records if r.skipped}
    assert set(skipped) == {"changes_vs_base", "per_code_change"} and "real_only" in skipped["changes_vs_base"]
    assert records[0].caption.startswith("DEMO DATA")
    assert np.all([(tmp_path / f"{r.name}.pdf").is_file() for r in records if not r.skipped])
