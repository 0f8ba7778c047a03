"""Figures of the evaluation stage: coverage, negated and unrequested rates by model × prior, and
the corpus metrics beside their real-vs-real ceilings."""

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


def _n_text(values: pd.Series) -> str:
    sizes = sorted({int(v) for v in values.dropna()})
    if not sizes:
        return "n=?"
    return f"n={sizes[0]}" if len(sizes) == 1 else f"n={sizes[0]}–{sizes[-1]}"


def corpus_ceilings(summary: dict[str, Any], ncols: int = 4):
    """One small panel per corpus metric that has a real-vs-real ceiling: a dot per model × prior
    with its spread (or 95 % interval) as an error bar, the ceiling as a grey tick with its spread
    as a band; a hollow dot: fewer notes than the documented minimum; n in the panel title."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from medsyn_utils.evaluate.corpus_report import corpus_table

    corpus = summary.get("corpus")
    if not corpus or corpus.get("skipped"):
        raise SkipFigure(f"no corpus summary ({corpus['skipped'] if corpus else 'corpus metrics not computed'})")
    table = corpus_table(corpus)
    table = table[table["value"].notna() & table["ceiling"].notna()]
    if not len(table):
        raise SkipFigure("the corpus summary has no metric with both a value and a ceiling")
    groups = [c for c in table.columns if c not in ("family", "metric", "value", "spread", "low", "high",
                                                    "ceiling", "ceiling_spread", "n", "minimum", "below_minimum")]
    labels = table[groups].astype(str).agg("\n".join, axis=1)
    order = list(dict.fromkeys(labels))
    panels = list(dict.fromkeys(zip(table["family"], table["metric"])))
    ncols = min(ncols, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7, 1.9 * nrows + 0.5), squeeze=False)
    for ax, (family, metric) in zip(axes.flat, panels):
        part = table[(table["family"] == family) & (table["metric"] == metric)]
        for label, row in zip(labels[part.index], part.itertuples(index=False)):
            x = order.index(label)
            band = row.ceiling_spread if pd.notna(row.ceiling_spread) else 0.0
            ax.fill_between([x - 0.35, x + 0.35], row.ceiling - band, row.ceiling + band, color="0.8", lw=0)
            ax.hlines(row.ceiling, x - 0.35, x + 0.35, color="0.4", lw=1.2)
            if pd.notna(row.spread):
                err = [[row.spread], [row.spread]]
            elif pd.notna(row.low) and pd.notna(row.high):
                err = [[max(row.value - row.low, 0)], [max(row.high - row.value, 0)]]
            else:
                err = None
            ax.errorbar([x], [row.value], yerr=err, fmt="o", ms=4, capsize=2, color="#4c72b0",
                        mfc="white" if row.below_minimum else "#4c72b0")
        ax.set_title(f"{family}: {metric}\n{_n_text(part['n'])}", fontsize=6)
        ax.set_xticks(range(len(order)), order, fontsize=4, rotation=90)
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.tick_params(axis="y", labelsize=5)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [Line2D([], [], marker="o", color="#4c72b0", ls="", label="model × prior (± spread)"),
               Line2D([], [], color="0.4", lw=1.2, label="real-vs-real ceiling (± spread, band)"),
               Line2D([], [], marker="o", color="#4c72b0", mfc="white", ls="",
                      label="below the documented minimum size")]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / (1.9 * nrows + 0.5)))
    return fig


def make_evaluation_figures(summary: dict[str, Any], folder: str | Path) -> list[FigureRecord]:
    """PNG and PDF of each metric by model × prior under ``folder``, and the corpus metrics
    beside their ceilings (skipped with the reason when there is no corpus summary)."""
    specs = [(f"evaluation_{metric}", f"{label} by generation model and prior, with 95 % intervals",
              lambda metric=metric, label=label: bar_with_intervals(summary, metric, label))
             for metric, label in METRICS]
    specs.append(("evaluation_corpus_ceilings",
                  "corpus metrics (realism, diversity, privacy) by generation model and prior beside "
                  "their real-vs-real ceilings; error bars: spread over seeds, folds or subsamples "
                  "(or a 95 % interval); hollow: fewer notes than the documented minimum",
                  lambda: corpus_ceilings(summary)))
    return save_figures(specs, folder)
