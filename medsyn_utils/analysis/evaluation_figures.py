"""Figures of the evaluation stage: coverage, negated and unrequested rates by model × prior."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from medsyn_utils.analysis.figure_io import FigureRecord, SkipFigure, save_figures

METRICS = (("symptom_coverage", "symptom coverage (affirmed share)"),
           ("negated_share", "negated share of requested symptoms"),
           ("unrequested_per_note", "unrequested findings per note"))


def _frame(summary: dict[str, Any], metric: str) -> pd.DataFrame:
    rows = [{"group": f"{g['generation_model']}\n{g['prior']}", **g[metric]}
            for g in summary["groups"] if g[metric]["mean"] is not None]
    if not rows:
        raise SkipFigure(f"no note has a value of {metric} (no requested symptoms?)")
    return pd.DataFrame(rows)


def bar_with_intervals(summary: dict[str, Any], metric: str, label: str):
    import matplotlib.pyplot as plt

    frame = _frame(summary, metric)
    fig, ax = plt.subplots(figsize=(max(3.5, 1.1 * len(frame)), 2.8))
    low = (frame["mean"] - frame["low"].fillna(frame["mean"])).clip(lower=0)
    high = (frame["high"].fillna(frame["mean"]) - frame["mean"]).clip(lower=0)
    ax.bar(range(len(frame)), frame["mean"], yerr=[low, high], capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(frame)), frame["group"], fontsize=7)
    ax.set_ylabel(label, fontsize=8)
    if metric != "unrequested_per_note":
        ax.set_ylim(0, 1)
    ax.set_title(f"{label} by model × prior (95 % bootstrap)", fontsize=8)
    fig.tight_layout()
    return fig


def make_evaluation_figures(summary: dict[str, Any], folder: str | Path) -> list[FigureRecord]:
    """PNG and PDF of each metric by model × prior under ``folder``."""
    specs = [(f"evaluation_{metric}", f"{label} by generation model and prior, with 95 % intervals",
              lambda metric=metric, label=label: bar_with_intervals(summary, metric, label))
             for metric, label in METRICS]
    return save_figures(specs, folder)
