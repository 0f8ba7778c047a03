"""Notebook 04's figures: both score distributions, the threshold sweep, the copy rate.

Plotting lives here (``analysis``), not in ``score``. Every function takes ``demo``: a figure
drawn from demo data carries a "DEMO DATA" watermark.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

DEMO_WATERMARK = "DEMO DATA"


def watermark(fig, demo: bool):
    """Write "DEMO DATA" across a figure made from demo data; return the figure."""
    if demo:
        fig.text(0.5, 0.5, DEMO_WATERMARK, fontsize=40, color="crimson", alpha=0.25, ha="center",
                 va="center", rotation=20, transform=fig.transFigure)
    return fig


def plot_distributions(scored: pd.DataFrame, thresholds: Mapping[str, float],
                       calibration_scores: pd.DataFrame | None = None, *, demo: bool = False):
    """Histograms of both scores (generated notes, and real notes when calibrated) with the
    thresholds the filter uses as vertical lines. ``calibration_scores``: ``Calibration.scores``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, name in zip(axes, ("symptoms_recall", "anamnesis_precision")):
        frames = [pd.DataFrame({"score": scored[name], "notes": "scored"})]
        if calibration_scores is not None:
            frames.append(pd.DataFrame({"score": calibration_scores[name], "notes": "real (calibration)"}))
        data = pd.concat(frames).dropna()
        if len(data):
            sns.histplot(data=data, x="score", hue="notes", stat="density", common_norm=False,
                         element="step", ax=ax, bins=30)
        line = ax.axvline(thresholds[name], color="crimson", linestyle="--")
        legend = ax.get_legend()
        handles = list(legend.legend_handles) if legend is not None else []
        labels = [t.get_text() for t in legend.get_texts()] if legend is not None else []
        ax.legend(handles + [line], labels + [f"threshold {thresholds[name]:.3f}"], loc="upper left",
                  fontsize=8)
        ax.set_title(name)
    fig.tight_layout()
    return watermark(fig, demo)


def plot_sweep(sweep: pd.DataFrame, thresholds: Mapping[str, float] | None = None, *,
               demo: bool = False):
    """Heat map: share of notes passing for each (recall, precision) threshold pair."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    grid = sweep.pivot(index="precision_threshold", columns="recall_threshold", values="share_passing")
    fig, ax = plt.subplots(figsize=(7, 5))
    sns.heatmap(grid.iloc[::-1], annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": "share passing"})
    title = "share of notes passing"
    if thresholds:
        title += (f" (in use: recall ≥ {thresholds['symptoms_recall']:.3f}, "
                  f"precision > {thresholds['anamnesis_precision']:.3f})")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return watermark(fig, demo)


def plot_copy_rate(scored: pd.DataFrame, copy_threshold: float, *, demo: bool = False):
    """Distribution of the share of 8-grams copied from the example, with the flag threshold."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6, 3.5))
    values = scored["copied_8gram_share"].dropna()
    if len(values):
        sns.histplot(values, bins=20, ax=ax)
    ax.axvline(copy_threshold, color="crimson", linestyle="--", label=f"flag at {copy_threshold:.2f}")
    ax.set_xlabel("share of the note's word 8-grams found in its style example")
    ax.legend()
    fig.tight_layout()
    return watermark(fig, demo)
