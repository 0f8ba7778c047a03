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


def _panel_metrics() -> dict:
    acc = {"acc@1": 0.49, "acc@3": 0.72, "acc@5": 0.8}

    def change(value, low, high, n_codes=105, n_test=822):
        return {"n_codes": n_codes, "n_test": n_test,
                **{f"acc@{k}": {"change": value, "ci_low": low, "ci_high": high} for k in (1, 3, 5)}}

    def comparisons(shift):
        return [{"other": "real_synthetic", "base": base, "all_codes": change(0.016 + shift, 0.001, 0.032),
                 "hard_rarest_quartile": change(0.05, None, None, 26, 66)}
                for base in ("real_only", "real_oversampled", "real_recombined", "real_class_weighted")]
    settings = [{"setting": "real_only", "share_real": 1.0, "fits": 1, "test": acc},
                {"setting": "real_oversampled", "share_real": 1.0, "fits": 3, "test": acc,
                 "test_sd_over_seeds": {k: 0.004 for k in acc}},
                {"setting": "synthetic_only", "share_real": 0.0, "fits": 1,
                 "test": {"acc@1": 0.1, "acc@3": 0.2, "acc@5": 0.3}}]
    return {"synthetic_source": "file x.csv", "n_test_visits": 822, "settings": settings,
            "comparisons": comparisons(0.0), "selection": {"models": ["GPT-4"], "select": "symptoms_recall>=0.65"},
            "panel": {"tfidf-svm": {"settings": settings, "comparisons": comparisons(0.0)},
                      "e5-logreg": {"settings": settings, "comparisons": comparisons(-0.02)}},
            "groups": [{"generation_model": "GPT-4", "prior": "s+a",
                        "panel": {"tfidf-svm": {"settings": settings, "comparisons": comparisons(0.0)}}}]}


def test_effects_are_legible_synthetic_only_has_its_own_axis_and_single_fits_have_no_error_bars():
    from medsyn_utils.analysis.downstream_figures import plot_accuracy_per_setting, plot_changes

    metrics = _panel_metrics()
    fig = plot_accuracy_per_setting(metrics)
    with_real, alone = fig.axes[:2]
    assert alone.get_title() == "synthetic notes only" and len(alone.get_xticklabels()) == 1
    errorbars = [c for c in with_real.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(errorbars) == 3 and all(len(c.lines[2][0].get_segments()) == 1 for c in errorbars)  # only the 3-fit setting
    assert "GPT-4" in fig._suptitle.get_text() and "822" in fig._suptitle.get_text()
    legend = with_real.figure.axes[-1].get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 >= with_real.figure.axes[-1].get_position().x1 - 1e-6
    changes = plot_changes(metrics)
    ax = changes.axes[0]
    low, high = ax.get_xlim()
    assert -4 < low < -2.9 and 2.9 < high < 4  # a 1.6-point effect is visible on a ±3.3-point axis
    assert "26 codes, 66 visits" in changes.axes[1].get_title()
    assert {t.get_text() for t in changes.legends[0].get_texts()} == {"tfidf-svm", "e5-logreg"}
    assert "select symptoms_recall>=0.65" in changes._suptitle.get_text()


def test_one_figure_set_per_group_with_the_selection_in_titles_and_index(tmp_path):
    records = write_downstream_figures(_panel_metrics(), None, tmp_path)
    assert [r.name for r in records if not r.skipped] == ["accuracy_per_setting", "changes_vs_base"]
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "models: GPT-4" in index and "GPT-4_s_a/index.md" in index
    group_index = (tmp_path / "GPT-4_s_a" / "index.md").read_text(encoding="utf-8")
    assert "GPT-4 / s+a" in group_index
    assert (tmp_path / "GPT-4_s_a" / "changes_vs_base.png").stat().st_size > 1000
