"""Figures of the downstream experiment, drawn from ``downstream_metrics.json`` content.

Accuracy per setting (test, one bar per k), the change of each setting against real only with
its paired bootstrap 95 % interval (not a seed sd), and the per-code change of real + synthetic
with intervals, hard codes and Benjamini–Hochberg survivors marked. Sized for a paper page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.analysis.figure_io import FigureRecord, SkipFigure, save_figures, setup, write_index

KS = (1, 3, 5)


def plot_accuracy_per_setting(metrics: dict[str, Any], split: str = "test") -> Any:
    """Grouped bars: acc@1/3/5 per setting on ``split``; the number of fits under each name."""
    plt, _ = setup()
    settings = [e for e in metrics.get("settings", []) if split in e]
    if not settings:
        raise SkipFigure("no setting ran")
    fig, ax = plt.subplots(figsize=(7.0, 3.0))
    x = np.arange(len(settings))
    width = 0.8 / len(KS)
    for i, k in enumerate(KS):
        values = [e[split][f"acc@{k}"] for e in settings]
        sd = [e.get(f"{split}_sd_over_seeds", {}).get(f"acc@{k}", 0.0) for e in settings]
        bars = ax.bar(x + (i - (len(KS) - 1) / 2) * width, values, width, label=f"acc@{k}",
                      yerr=sd if any(sd) else None, capsize=2)
        ax.bar_label(bars, fmt="%.2f", fontsize=5, padding=1)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{e['setting']}\n({e['fits']} fit{'s' if e['fits'] > 1 else ''})"
                        for e in settings], rotation=25, ha="right", fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"{split} accuracy")
    ax.legend(fontsize=6, ncol=3, loc="upper right")
    fig.tight_layout()
    return fig


def plot_changes(metrics: dict[str, Any]) -> Any:
    """Change in test acc@1/3/5 of each setting against its base, with paired 95 % intervals;
    all codes and each form of hard codes as panels."""
    plt, _ = setup()
    comparisons = metrics.get("comparisons", [])
    if not comparisons:
        raise SkipFigure("no pair of settings to compare (real_only and another setting must run)")
    groups = [g for g in comparisons[0] if g == "all_codes" or g.startswith("hard_")]
    fig, axes = plt.subplots(1, len(groups), figsize=(7.0, 2.8), sharey=True, squeeze=False)
    y = np.arange(len(comparisons))
    for ax, group in zip(axes[0], groups):
        for i, k in enumerate(KS):
            entries = [c[group].get(f"acc@{k}") for c in comparisons]
            change = np.array([e["change"] if e else np.nan for e in entries])
            low = np.array([e["ci_low"] if e else np.nan for e in entries])
            high = np.array([e["ci_high"] if e else np.nan for e in entries])
            ax.errorbar(100 * change, y + (i - 1) * 0.22, fmt="o", markersize=3, label=f"acc@{k}",
                        xerr=[100 * np.clip(change - low, 0, None), 100 * np.clip(high - change, 0, None)],
                        elinewidth=1, capsize=2)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(group.replace("_", " "), fontsize=7)
        ax.set_xlabel("change (points)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0][0].set_yticks(y)
    axes[0][0].set_yticklabels([f"{c['other']} − {c['base']}" for c in comparisons], fontsize=6)
    axes[0][-1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def plot_per_code_change(per_code: pd.DataFrame) -> Any:
    """Per-code change in acc@1 (sorted) with paired 95 % intervals; hard codes in red, codes
    whose change survives Benjamini–Hochberg (q < 0.05) circled."""
    plt, _ = setup()
    if per_code is None or per_code.empty:
        raise SkipFigure("real_synthetic or real_only did not run: no per-code change")
    data = per_code.sort_values("change", ascending=False).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    x = np.arange(len(data))
    hard = data.get("hard_rarest_quartile", pd.Series(False, index=data.index)).astype(bool)
    low = (data["change"] - data["ci_low"]).clip(lower=0).fillna(0)
    high = (data["ci_high"] - data["change"]).clip(lower=0).fillna(0)
    ax.errorbar(x, 100 * data["change"], yerr=[100 * low, 100 * high], fmt="none", ecolor="tab:gray",
                elinewidth=0.8, alpha=0.7)
    ax.scatter(x[~hard], 100 * data["change"][~hard], c="tab:blue", s=8, zorder=3, label="code")
    ax.scatter(x[hard], 100 * data["change"][hard], c="tab:red", s=8, zorder=3,
               label="hard (rarest quartile)")
    if "significant_bh_0.05" in data.columns and data["significant_bh_0.05"].any():
        sig = data["significant_bh_0.05"].astype(bool)
        ax.scatter(x[sig], 100 * data["change"][sig], facecolors="none", edgecolors="black", s=40,
                   zorder=4, label="BH q < 0.05")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(data["code"], rotation=90, fontsize=4 if len(data) > 60 else 6)
    ax.set_xlim(-1, len(data))
    ax.set_ylabel("change in acc@1 (points)", fontsize=7)
    ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def write_downstream_figures(metrics: dict[str, Any], per_code: pd.DataFrame | None,
                             folder: str | Path) -> list[FigureRecord]:
    """Draw and save the downstream figures with ``index.md``; DEMO DATA when ``metrics['demo']``."""
    demo = bool(metrics.get("demo"))
    specs = [
        ("accuracy_per_setting", "Test acc@1/3/5 per setting (error bars only where a setting was "
                                 "fitted more than once: sd over seeds).",
         lambda: plot_accuracy_per_setting(metrics)),
        ("changes_vs_base", "Change in test accuracy against the base setting with paired "
                            "bootstrap 95 % intervals over test visits; panels: all codes and the "
                            "two forms of hard codes.",
         lambda: plot_changes(metrics)),
        ("per_code_change", "Per-code change in acc@1 (real_synthetic − real_only) with paired "
                            "95 % intervals; exploratory (about eight test visits per code), BH q "
                            "< 0.05 circled.",
         lambda: plot_per_code_change(per_code)),
    ]
    records = save_figures(specs, folder, demo=demo)
    notes = ["**DEMO DATA**: made-up notes, not model output"] if demo else []
    write_index(records, folder, title="Downstream ICD experiment",
                notes=notes + [f"synthetic notes: {metrics.get('synthetic_source', '')}"])
    return records
