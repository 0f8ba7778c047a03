"""Paper figures from any scored dataset in the published MedSyn schema (seaborn).

Why a module: the analysis notebook only calls :func:`make_figures`, so the same figures come out
of a kit run (``scored.parquet``), the published 41,185-note CSV, or a demo table, and every
figure is tested here. Optional columns are read defensively: a figure whose inputs are missing
is skipped with a note in the figure index, never an exception. Value labels of ``prior`` and
``generation_model`` come from the data. Metrics the scoring stage may or may not have written
(note length, copy share, number of symptoms, pass/fail) are computed from ``response``,
``anamnesis`` and ``symptoms`` when absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.analysis.columns import (COPY_NGRAM, FILTER_GROUPS, MISSING_LABEL,
                                           SCORE_COLUMNS, Groups, _labels, add_derived_columns,
                                           prepare_groups, real_note_lengths, task_categories)
from medsyn_utils.analysis.figure_io import (FigureRecord, SkipFigure, index_table, quiet,
                                             save_figures, setup, write_index)

__all__ = ["make_figures", "summary_metrics", "scoring_thresholds", "index_table", "REAL_DATA_FILES"]
from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.score.filter import PAPER_PRECISION, PAPER_RECALL

REAL_DATA_FILES = ["rumedbench/RuMedTop3/train_v1.jsonl", "medsyn/notes/train_v1_symp_anam_75pct.jsonl"]

# --------------------------------------------------------------------------------------------
# The figures
# --------------------------------------------------------------------------------------------

def _facet_axes(plt: Any, n_rows: int, n_cols: int, width: float = 3.2, height: float = 2.6):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows),
                             squeeze=False, sharex="row", sharey="row")
    return fig, axes


def plot_score_distributions(frame: pd.DataFrame, groups: Groups, *, hue: str | None = None,
                             hue_order: Sequence[str] | None = None, recall_threshold: float = PAPER_RECALL,
                             precision_threshold: float = PAPER_PRECISION) -> Any:
    """Histograms of both scores (rows) per facet value (columns), coloured by ``hue``, with
    the threshold lines."""
    plt, sns = setup()
    scores = [c for c in SCORE_COLUMNS if c in frame.columns and frame[c].notna().any()]
    if not scores:
        raise SkipFigure("no score column (symptoms_recall, anamnesis_precision) with values")
    hue = hue or groups.hue
    hue_order = list(hue_order or groups.hue_order)
    fig, axes = _facet_axes(plt, len(scores), len(groups.facet_order))
    thresholds = {"symptoms_recall": recall_threshold, "anamnesis_precision": precision_threshold}
    palette = dict(zip(hue_order, sns.color_palette(n_colors=max(len(hue_order), 1))))
    for r, score in enumerate(scores):
        for c, value in enumerate(groups.facet_order):
            ax = axes[r][c]
            part = frame[(frame[groups.facet] == value) & frame[score].notna()]
            present = [h for h in hue_order if (part[hue] == h).any()]
            if len(part):
                sns.histplot(data=part, x=score, hue=hue, hue_order=present, palette=palette,
                             element="step", stat="density", common_norm=False, bins=30, ax=ax,
                             legend=False)
            else:  # say on the figure why the panel is empty
                ax.text(0.5, 0.5, f"no {score} values here\n(e.g. no style example)", ha="center",
                        va="center", fontsize=6, transform=ax.transAxes, color="tab:gray")
            ax.axvline(thresholds[score], color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{value} (n={len(part)})" if r == 0 else "")
            ax.set_xlabel(score)
    handles = [plt.Line2D([0], [0], color=palette[h], lw=2) for h in hue_order]
    fig.tight_layout(rect=(0, 0, 1, 0.9))  # room above the panel titles for the legend
    fig.legend(handles, hue_order, title=hue, loc="lower center", ncol=min(len(hue_order), 6),
               bbox_to_anchor=(0.5, 0.9), fontsize=7, title_fontsize=7, frameon=False)
    return fig


def plot_share_passing(frame: pd.DataFrame, groups: Groups) -> Any:
    """Share of notes that passed, failed, or that the filter does not apply to (own group, never
    counted as passed), per facet × hue value, as stacked bars with counts."""
    plt, sns = setup()
    if "_filter_group" not in frame.columns:
        raise SkipFigure("no passed_filter column and no score column to apply thresholds to")
    shares = (pd.crosstab([frame[groups.facet], frame[groups.hue]], frame["_filter_group"],
                          normalize="index").reindex(columns=list(FILTER_GROUPS), fill_value=0.0))
    sizes = frame.groupby([groups.facet, groups.hue]).size()
    labels = [f"{f} · {h} (n={sizes[(f, h)]})" for f, h in shares.index]
    fig, ax = plt.subplots(figsize=(min(7.0, max(3.5, 0.55 * len(labels))), 3.2))
    bottom = np.zeros(len(shares))
    colours = {"passed": "tab:green", "failed": "tab:red", FILTER_GROUPS[2]: "tab:gray"}
    for group in FILTER_GROUPS:
        bars = ax.bar(range(len(shares)), shares[group].to_numpy(), bottom=bottom,
                      color=colours[group], label=group, width=0.8)
        ax.bar_label(bars, labels=[f"{v:.2f}" if v >= 0.06 else "" for v in shares[group]],
                     label_type="center", fontsize=6)
        bottom += shares[group].to_numpy()
    ax.set_xticks(range(len(shares)))
    ax.set_xticklabels(labels, fontsize=6, rotation=40, ha="right")
    ax.set_ylabel("share of notes")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_counts(frame: pd.DataFrame, groups: Groups, *, top_codes: int = 30) -> Any:
    """Counts per facet × hue (heatmap with totals) and the most frequent codes."""
    plt, sns = setup()
    if "ICD-10" in frame.columns:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    else:
        fig, ax1 = plt.subplots(figsize=(6, 4.2))
        ax2 = None
    table = pd.crosstab(frame[groups.facet], frame[groups.hue]).reindex(
        index=groups.facet_order, columns=groups.hue_order, fill_value=0)
    table.index = [f"{i} ({n})" for i, n in zip(table.index, table.sum(axis=1))]
    table.columns = [f"{c} ({n})" for c, n in zip(table.columns, table.sum(axis=0))]
    sns.heatmap(table, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax1)
    ax1.tick_params(axis="x", rotation=20)
    ax1.tick_params(axis="y", rotation=0)
    ax1.set_xlabel(groups.hue)
    ax1.set_ylabel(groups.facet)
    ax1.set_title(f"notes per {groups.facet} × {groups.hue} (total {len(frame)})")
    if ax2 is not None:
        counts = frame["ICD-10"].astype(str).value_counts().head(top_codes)
        sns.barplot(x=counts.index, y=counts.values, color="steelblue", ax=ax2)
        ax2.tick_params(axis="x", rotation=90, labelsize=7)
        ax2.set_ylabel("notes")
        ax2.set_xlabel("ICD-10")
        ax2.set_title(f"{min(top_codes, len(counts))} most frequent codes "
                      f"(of {frame['ICD-10'].nunique()})")
    fig.tight_layout()
    return fig


def plot_code_coverage(frame: pd.DataFrame, task_categories: set[str] | None = None) -> Any:
    """Notes per three-character category, sorted by count; RuMedTop3 categories highlighted and
    the passing notes overlaid when known."""
    plt, sns = setup()
    if "_category" not in frame.columns:
        raise SkipFigure("no ICD-10 column")
    categories = frame["_category"].fillna("(malformed)")
    counts = categories.value_counts()
    fig, ax = plt.subplots(figsize=(min(max(8, 0.09 * len(counts)), 40), 3.8))
    x = np.arange(len(counts))
    inside = np.array([task_categories is None or c in task_categories for c in counts.index])
    ax.bar(x[inside], counts.values[inside], color="tab:blue", width=0.9,
           label="all notes, RuMedTop3 category" if task_categories is not None else "all notes")
    if (~inside).any():
        outside = [str(c) for c in counts.index[~inside]]
        ax.bar(x[~inside], counts.values[~inside], color="tab:gray", width=0.9,
               label=f"outside RuMedTop3 ({len(outside)}: {', '.join(outside[:6])}"
                     f"{', …' if len(outside) > 6 else ''})")
    if "_passed" in frame.columns:
        passing = frame[frame["_passed"] == 1]["_category"].fillna("(malformed)").value_counts()
        ax.bar(x, passing.reindex(counts.index, fill_value=0).values, color="black", alpha=0.35,
               width=0.9, label="of which passed the filter")
    ax.set_xticks(x)
    ax.set_xticklabels(counts.index if len(counts) <= 300 else [""] * len(counts), rotation=90,
                       fontsize=4 if len(counts) > 120 else (5 if len(counts) > 60 else 7))
    ax.set_xlim(-1, len(counts))
    ax.set_ylabel("notes")
    covered = "" if task_categories is None else (
        f"; {sum(c in task_categories for c in counts.index)} of {len(task_categories)} RuMedTop3 "
        f"categories covered")
    ax.set_title(f"{len(counts)} categories{covered}", fontsize=8)
    ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def plot_note_length(frame: pd.DataFrame, groups: Groups,
                     real_lengths: dict[str, pd.Series] | None = None) -> Any:
    """Note length in words per facet value (box plots), next to real notes."""
    plt, sns = setup()
    if "_length" not in frame.columns:
        raise SkipFigure("no response column and no length column")
    parts = [pd.DataFrame({"group": frame[groups.facet], "words": frame["_length"], "kind": "synthetic"})]
    for label, lengths in (real_lengths or {}).items():
        parts.append(pd.DataFrame({"group": label, "words": lengths.to_numpy(), "kind": "real"}))
    data = pd.concat(parts, ignore_index=True).dropna(subset=["words"])
    order = list(groups.facet_order) + list((real_lengths or {}).keys())
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(order)), 3.8))
    with quiet():
        sns.boxplot(data=data, x="group", y="words", hue="kind", order=order, showfliers=False,
                    ax=ax, palette={"synthetic": "tab:blue", "real": "tab:orange"})
    medians = data.groupby("group")["words"].median()
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([f"{g}\nmedian {medians.get(g, float('nan')):.0f}" for g in order], fontsize=7)
    ax.set_xlabel("")
    ax.set_ylabel("words per note")
    fig.tight_layout()
    return fig


def plot_recall_vs_symptoms(frame: pd.DataFrame, groups: Groups) -> Any:
    """Symptom recall against the number of sampled symptoms, per facet value."""
    plt, sns = setup()
    if "symptoms_recall" not in frame.columns or not frame["symptoms_recall"].notna().any():
        raise SkipFigure("no symptoms_recall values")
    if "_n_symptoms" not in frame.columns:
        raise SkipFigure("no symptoms column and no n_symptoms column")
    data = frame[frame["symptoms_recall"].notna() & (frame["_n_symptoms"] > 0)].copy()
    if data.empty:
        raise SkipFigure("no note has both a symptom recall and at least one symptom")
    data["n symptoms"] = data["_n_symptoms"].astype(int)
    order = sorted(data["n symptoms"].unique())
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order) * max(1, len(groups.facet_order)) / 2), 3.8))
    with quiet():
        sns.boxplot(data=data, x="n symptoms", y="symptoms_recall", hue=groups.facet, order=order,
                    hue_order=groups.facet_order, showfliers=False, ax=ax)
    ax.set_xlabel("number of symptoms in the prompt")
    ax.legend(title=groups.facet, fontsize=7)
    fig.tight_layout()
    return fig


def plot_copy_vs_precision(frame: pd.DataFrame, groups: Groups, *, precision_threshold: float = PAPER_PRECISION,
                           max_points: int = 10000, seed: int = 0) -> Any:
    """Copy share (note n-grams found in the style example) against style precision."""
    plt, sns = setup()
    if "anamnesis_precision" not in frame.columns or not frame["anamnesis_precision"].notna().any():
        raise SkipFigure("no anamnesis_precision values")
    if "_copy" not in frame.columns:
        raise SkipFigure("no copy column and no response/anamnesis texts to compute it from")
    data = frame[frame["_copy"].notna() & frame["anamnesis_precision"].notna()]
    if data.empty:
        raise SkipFigure("no note has both a copy share and a style precision "
                         "(private or missing style examples)")
    if len(data) > max_points:
        data = data.sample(n=max_points, random_state=seed)
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.scatterplot(data=data, x="_copy", y="anamnesis_precision", hue=groups.facet,
                    hue_order=[h for h in groups.facet_order if (data[groups.facet] == h).any()],
                    s=10, alpha=0.5, linewidth=0, ax=ax, rasterized=True)
    ax.axhline(precision_threshold, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel(f"copy share (word {COPY_NGRAM}-grams of the note found in its style example)")
    ax.legend(title=groups.facet, fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# All figures
# --------------------------------------------------------------------------------------------

def make_figures(frame: pd.DataFrame, output_dir: str | Path, *,
                 group_columns: Sequence[str] = ("generation_model", "prior"),
                 recall_threshold: float = PAPER_RECALL, precision_threshold: float = PAPER_PRECISION,
                 compare_real: bool = True, max_points: int = 10000, seed: int = 0,
                 title: str = "Figures", demo: bool = False) -> list[FigureRecord]:
    """Draw every figure that the table's columns allow, save PNG + PDF and ``index.md``.

    ``group_columns``: the first present one makes the panels (e.g. ``generation_model``), the
    second the colours (e.g. ``prior``). Figures whose inputs are missing are recorded as
    skipped with the reason; ``demo`` watermarks every figure DEMO DATA. Returns the index entries.
    """
    if isinstance(group_columns, str):
        group_columns = [c.strip() for c in group_columns.split(",") if c.strip()]
    if frame.empty:
        raise InputTableError("the scored dataset has no rows: nothing to plot")
    if not 0 <= recall_threshold <= 1 or not 0 <= precision_threshold <= 1:
        raise ParameterError(f"thresholds {recall_threshold}/{precision_threshold} must lie in [0, 1]")
    output_dir = Path(output_dir)
    data, derived = add_derived_columns(frame, recall_threshold=recall_threshold,
                                        precision_threshold=precision_threshold)
    data, groups = prepare_groups(data, group_columns)
    notes = (["**DEMO DATA**: made-up notes with random scores, not model output"] if demo else [])
    notes.append(f"{len(frame)} notes; panels by {groups.facet}, colours by {groups.hue}")
    if groups.note:
        notes.append(groups.note)
    notes += [f"{name.strip('_')}: {how}" for name, how in derived.items()]
    real_lengths: dict[str, pd.Series] = {}
    categories = None
    if compare_real:
        real_lengths, note = real_note_lengths()
        if note:
            notes.append(note)
        categories, note = task_categories()
        if note:
            notes.append(note)
    thresholds = f"dashed lines: recall ≥ {recall_threshold:.3g}, precision > {precision_threshold:.3g}"
    source_groups = None
    if "example_source" in data.columns and data["example_source"].notna().any():
        data["example_source"] = _labels(data, "example_source")
        source_groups = sorted(data["example_source"].unique())
    specs: list[tuple[str, str, Callable[[], Any]]] = [
        ("scores_by_model_prior",
         f"Score distributions per {groups.facet} (panels) and {groups.hue} (colours); {thresholds}.",
         lambda: plot_score_distributions(data, groups, recall_threshold=recall_threshold,
                                          precision_threshold=precision_threshold)),
        ("scores_by_example_source",
         f"Score distributions per {groups.facet} (panels) and example_source (colours); {thresholds}.",
         lambda: _by_source(data, groups, source_groups, recall_threshold, precision_threshold)),
        ("share_passing",
         f"Share of notes passing, failing, or not covered by the filter per {groups.facet} and "
         f"{groups.hue} ({derived.get('_passed', 'no filter')}).",
         lambda: plot_share_passing(data, groups)),
        ("counts", f"Number of notes per {groups.facet} × {groups.hue} (totals in the labels) and "
                   f"the most frequent ICD-10 codes.",
         lambda: plot_counts(data, groups)),
        ("code_coverage", "Notes per three-character ICD-10 category, sorted by count; "
                          "RuMedTop3 categories in blue, the darker overlay = notes passing the filter.",
         lambda: plot_code_coverage(data, categories)),
        ("note_length", f"Note length in words per {groups.facet} against real notes "
                        f"({derived.get('_length', '')}); boxes without outliers.",
         lambda: plot_note_length(data, groups, real_lengths)),
        ("recall_vs_n_symptoms", f"symptoms_recall against the number of symptoms in the prompt, "
                                 f"per {groups.facet}.",
         lambda: plot_recall_vs_symptoms(data, groups)),
        ("copy_vs_precision", f"Copy share ({derived.get('_copy', '')}) against anamnesis_precision "
                              f"(at most {max_points} points drawn); dashed: precision threshold.",
         lambda: plot_copy_vs_precision(data, groups, precision_threshold=precision_threshold,
                                        max_points=max_points, seed=seed)),
    ]
    records = save_figures(specs, output_dir, demo=demo)
    write_index(records, output_dir, title=title, notes=notes)
    return records


def _by_source(data: pd.DataFrame, groups: Groups, source_groups: list[str] | None,
               recall_threshold: float, precision_threshold: float) -> Any:
    if source_groups is None:
        raise SkipFigure("no example_source column with values")
    return plot_score_distributions(data, groups, hue="example_source", hue_order=source_groups,
                                    recall_threshold=recall_threshold,
                                    precision_threshold=precision_threshold)


def scoring_thresholds(run_dir: str | Path) -> dict[str, float] | None:
    """The thresholds the run's scoring stage applied (calibrated to its encoder), if recorded."""
    from medsyn_utils.core.artefacts import read_stage_record
    from medsyn_utils.core.paths import resolve

    record = read_stage_record(resolve(run_dir), "04_bertscore_evaluation") or {}
    used = (record.get("metrics") or {}).get("thresholds_used")
    if not isinstance(used, dict) or not {"symptoms_recall", "anamnesis_precision"} <= set(used):
        return None
    return {"symptoms_recall": float(used["symptoms_recall"]),
            "anamnesis_precision": float(used["anamnesis_precision"])}


def summary_metrics(frame: pd.DataFrame, records: Sequence[FigureRecord],
                    group_columns: Sequence[str] = ("generation_model", "prior"),
                    recall_threshold: float = PAPER_RECALL, precision_threshold: float = PAPER_PRECISION) -> dict[str, Any]:
    """Key numbers for the stage record: rows, labels found, share passing, figures made/skipped."""
    data, derived = add_derived_columns(frame, recall_threshold=recall_threshold,
                                        precision_threshold=precision_threshold)
    out: dict[str, Any] = {"rows": int(len(frame))}
    for column in group_columns:
        if column in frame.columns:
            values = frame[column]
            out[f"{column}_values"] = sorted(values.dropna().astype(str).unique().tolist()) + (
                [MISSING_LABEL] if values.isna().any() else [])
    if "_filter_group" in data.columns:
        out["share_passed"] = float(data["_passed"].mean())
        out["filter_groups"] = {k: int(v) for k, v in data["_filter_group"].value_counts().items()}
        out["passed_from"] = derived["_passed"]
    for score in SCORE_COLUMNS:
        if score in data.columns and data[score].notna().any():
            out[f"{score}_mean"] = float(data[score].mean())
    if "_category" in data.columns:
        out["categories"] = int(data["_category"].nunique())
    out["figures_saved"] = [r.name for r in records if not r.skipped]
    out["figures_skipped"] = {r.name: r.skipped for r in records if r.skipped}
    return out
