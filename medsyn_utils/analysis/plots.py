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

import ast
import contextlib
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import InputTableError, ParameterError

MISSING_LABEL = "(none)"
SCORE_COLUMNS = ("symptoms_recall", "anamnesis_precision")
# Alternative names of the optional metric columns (first one present wins).
LENGTH_COLUMNS = ("note_words", "length_words", "n_words", "words", "response_words", "length_in_words")
COPY_COLUMNS = ("copy_share", "copy_rate", "copied_8gram_share", "copy_8gram_share",
                "ngram_copy_share", "copy_ngram_share")
NSYMPTOM_COLUMNS = ("n_symptoms", "num_symptoms", "symptom_count")
PASS_COLUMNS = ("passed_filter", "passed", "pass_filter")
PRIVATE_MARK = "private_data"
REAL_DATA_FILES = ["rumedbench/RuMedTop3/train_v1.jsonl", "medsyn/notes/train_v1_symp_anam_75pct.jsonl"]
COPY_NGRAM = 8
_WORD = re.compile(r"\w+")


class SkipFigure(Exception):
    """Raised inside a figure function when its inputs are missing; becomes a note in the index."""


@dataclass
class FigureRecord:
    """One entry of the figure index: saved files, or the reason it was skipped."""

    name: str
    caption: str
    files: list[str] = field(default_factory=list)
    skipped: str | None = None


# --------------------------------------------------------------------------------------------
# Reading and derived columns
# --------------------------------------------------------------------------------------------

def load_scored(path: str | Path) -> pd.DataFrame:
    """Read a scored dataset (``.parquet``/``.csv``) and normalise ``example`` to booleans."""
    from medsyn_utils.downstream.experiment import load_table

    frame = load_table(path)
    if frame.empty:
        raise InputTableError(f"scored dataset {path} has no rows: run the scoring stage or give "
                              f"another file")
    if "example" in frame.columns and frame["example"].dtype == object:
        mapping = {"true": True, "false": False, "1": True, "0": False}
        frame["example"] = frame["example"].map(lambda v: mapping.get(str(v).strip().lower(), v))
    return frame


def _first(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def count_symptoms(value: Any) -> float:
    """Number of symptoms in a ``symptoms`` cell: a list, a list literal, or ``", "``-joined text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return float("nan")
    if isinstance(value, (list, tuple, np.ndarray)):
        return float(sum(1 for v in value if str(v).strip()))
    text = str(value).strip()
    if not text:
        return 0.0
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
            if isinstance(parsed, (list, tuple)):
                return float(sum(1 for v in parsed if str(v).strip()))
        except (ValueError, SyntaxError):
            text = text.strip("[]")
    return float(sum(1 for part in re.split(r"[,;\n]", text) if part.strip(" '\"")))


def copy_share(response: Any, example: Any, n: int = COPY_NGRAM) -> float:
    """Share of the note's word ``n``-grams found in its style example (NaN without an example).

    The scoring stage's metric (:func:`medsyn_utils.quality.copied_ngram_share`); a published
    ``private_data`` example counts as missing.
    """
    from medsyn_utils.score.quality import copied_ngram_share

    if not isinstance(response, str) or not isinstance(example, str):
        return float("nan")
    if example.strip() == PRIVATE_MARK:
        return float("nan")
    return copied_ngram_share(response, example, n)


def add_derived_columns(frame: pd.DataFrame, *, recall_threshold: float = 0.65,
                        precision_threshold: float = 0.7) -> tuple[pd.DataFrame, dict[str, str]]:
    """Add the kit's analysis columns (``_length``, ``_n_symptoms``, ``_copy``, ``_passed``,
    ``_category``) from the scoring stage's columns when present, else computed from the text.

    Returns the new table and a note per column saying where its values came from.
    """
    from medsyn_utils.downstream.experiment import to_category

    out = frame.copy()
    notes: dict[str, str] = {}
    length = _first(out, LENGTH_COLUMNS)
    if length:
        out["_length"] = pd.to_numeric(out[length], errors="coerce")
        notes["_length"] = f"column {length}"
    elif "response" in out.columns:
        out["_length"] = out["response"].fillna("").astype(str).str.count(_WORD.pattern)
        notes["_length"] = "words counted in response"
    nsym = _first(out, NSYMPTOM_COLUMNS)
    if nsym:
        out["_n_symptoms"] = pd.to_numeric(out[nsym], errors="coerce")
        notes["_n_symptoms"] = f"column {nsym}"
    elif "symptoms" in out.columns:
        unique = {v: count_symptoms(v) for v in out["symptoms"].dropna().astype(str).unique()}
        out["_n_symptoms"] = out["symptoms"].map(
            lambda v: count_symptoms(v) if not isinstance(v, str) else unique.get(v, 0.0))
        notes["_n_symptoms"] = "counted in symptoms"
    copy = _first(out, COPY_COLUMNS)
    if copy:
        out["_copy"] = pd.to_numeric(out[copy], errors="coerce")
        notes["_copy"] = f"column {copy}"
    elif "response" in out.columns and "anamnesis" in out.columns:
        out["_copy"] = [copy_share(r, a, COPY_NGRAM)
                        for r, a in zip(out["response"], out["anamnesis"])]
        notes["_copy"] = f"share of response word {COPY_NGRAM}-grams found in anamnesis"
    passed = _first(out, PASS_COLUMNS)
    if passed:
        out["_passed"] = out[passed].astype("boolean").astype(float)
        notes["_passed"] = f"column {passed}"
    elif any(c in out.columns for c in SCORE_COLUMNS):
        from medsyn_utils.score.scoring import passed_filter

        scores = {c: pd.to_numeric(out[c], errors="coerce") if c in out.columns else
                  pd.Series(np.nan, index=out.index) for c in SCORE_COLUMNS}
        out["_passed"] = passed_filter(scores["symptoms_recall"], scores["anamnesis_precision"],
                                       recall_threshold, precision_threshold).astype(float)
        notes["_passed"] = (f"symptoms_recall ≥ {recall_threshold:.3g} and anamnesis_precision > "
                            f"{precision_threshold:.3g} (a missing score does not fail)")
    code = _first(out, ("ICD-10", "category", "icd10"))
    if code:
        out["_category"] = out[code].map(to_category)
    for column in SCORE_COLUMNS:
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce")
    return out, notes


def display_label(value: Any) -> str:
    """A value as a plot label: missing → ``(none)``; a local model path → its last two parts."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_LABEL
    text = str(value)
    if text.startswith(("/", "~")) and text.count("/") > 2:
        return "…/" + "/".join(Path(text).parts[-2:])
    return text


def _labels(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].map(display_label)


@dataclass
class Groups:
    """The facet column (one panel per value) and hue column (one colour per value)."""

    facet: str
    hue: str
    facet_order: list[str]
    hue_order: list[str]
    note: str = ""


def prepare_groups(frame: pd.DataFrame, group_columns: Sequence[str]) -> tuple[pd.DataFrame, Groups]:
    """Resolve the grouping columns (facet = first present, hue = second) with labels from the data."""
    present = [c for c in group_columns if c in frame.columns]
    missing = [c for c in group_columns if c not in frame.columns]
    out = frame.copy()
    note = f"grouping column(s) {', '.join(missing)} absent" if missing else ""
    if not present:
        out["_facet"] = "all"
        facet = "_facet"
    else:
        facet = present[0]
        out[facet] = _labels(out, facet)
    if len(present) >= 2:
        hue = present[1]
        out[hue] = _labels(out, hue)
    else:
        out["_hue"] = "all"
        hue = "_hue"
    return out, Groups(facet, hue, sorted(out[facet].unique()), sorted(out[hue].unique()), note)


# --------------------------------------------------------------------------------------------
# Saving and the index
# --------------------------------------------------------------------------------------------

def save_figure(fig: Any, folder: str | Path, name: str, caption: str,
                formats: Sequence[str] = ("png", "pdf")) -> FigureRecord:
    """Save a figure as PNG and PDF under ``folder`` and close it; returns its index entry."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        fig.savefig(path, dpi=130, bbox_inches="tight")
        files.append(str(path))
    plt.close(fig)
    return FigureRecord(name=name, caption=caption, files=files)


def write_index(records: Sequence[FigureRecord], folder: str | Path, *, title: str = "Figures",
                notes: Sequence[str] = ()) -> Path:
    """Write ``index.md``: every figure with its caption and files, skipped ones with the reason."""
    from medsyn_utils.core.provenance import write_atomic

    folder = Path(folder)
    lines = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes]
    if notes:
        lines.append("")
    for record in records:
        lines.append(f"## {record.name}")
        lines.append("")
        if record.skipped:
            lines.append(f"*Skipped*: {record.skipped}")
        else:
            lines.append(record.caption)
            lines.append("")
            png = next((f for f in record.files if f.endswith(".png")), None)
            if png:
                lines.append(f"![{record.name}]({Path(png).name})")
                lines.append("")
            lines.append("Files: " + ", ".join(f"[{Path(f).name}]({Path(f).name})" for f in record.files))
        lines.append("")
    return write_atomic(folder / "index.md", "\n".join(lines))


def index_table(records: Sequence[FigureRecord]) -> pd.DataFrame:
    """The figure index as a table (for display in a notebook)."""
    return pd.DataFrame([{"figure": r.name, "status": "skipped" if r.skipped else "saved",
                          "caption or reason": r.skipped or r.caption} for r in records])


# --------------------------------------------------------------------------------------------
# The figures
# --------------------------------------------------------------------------------------------

def _setup() -> tuple[Any, Any]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence seaborn's own use of deprecated matplotlib arguments (not ours to fix)."""
    from matplotlib import MatplotlibDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
        yield


def _facet_axes(plt: Any, n_rows: int, n_cols: int, width: float = 3.2, height: float = 2.6):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows),
                             squeeze=False, sharex="row", sharey="row")
    return fig, axes


def plot_score_distributions(frame: pd.DataFrame, groups: Groups, *, hue: str | None = None,
                             hue_order: Sequence[str] | None = None, recall_threshold: float = 0.65,
                             precision_threshold: float = 0.7) -> Any:
    """Histograms of both scores (rows) per facet value (columns), coloured by ``hue``, with
    the threshold lines."""
    plt, sns = _setup()
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
            ax.axvline(thresholds[score], color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{value} (n={len(part)})" if r == 0 else "")
            ax.set_xlabel(score)
    handles = [plt.Line2D([0], [0], color=palette[h], lw=2) for h in hue_order]
    fig.legend(handles, hue_order, title=hue, loc="upper center", ncol=min(len(hue_order), 6),
               bbox_to_anchor=(0.5, 1.06))
    fig.tight_layout()
    return fig


def plot_share_passing(frame: pd.DataFrame, groups: Groups) -> Any:
    """Share of notes passing the filter per facet value and hue value (with counts)."""
    plt, sns = _setup()
    if "_passed" not in frame.columns:
        raise SkipFigure("no passed_filter column and no score column to apply thresholds to")
    table = (frame.groupby([groups.facet, groups.hue])["_passed"].agg(["mean", "size"]).reset_index())
    width = max(5.0, 0.7 * len(groups.facet_order) * max(1, len(groups.hue_order)))
    fig, ax = plt.subplots(figsize=(width, 3.4))
    sns.barplot(data=table, x=groups.facet, y="mean", hue=groups.hue, order=groups.facet_order,
                hue_order=groups.hue_order, ax=ax)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2f", fontsize=7)
    ax.set_ylabel("share passing the filter")
    ax.set_ylim(0, 1.1)
    ax.legend(title=groups.hue, fontsize=7)
    fig.tight_layout()
    return fig


def plot_counts(frame: pd.DataFrame, groups: Groups, *, top_codes: int = 30) -> Any:
    """Counts per facet × hue (heatmap with totals) and the most frequent codes."""
    plt, sns = _setup()
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
    plt, sns = _setup()
    if "_category" not in frame.columns:
        raise SkipFigure("no ICD-10 column")
    categories = frame["_category"].fillna("(malformed)")
    counts = categories.value_counts()
    fig, ax = plt.subplots(figsize=(min(max(8, 0.09 * len(counts)), 40), 3.8))
    x = np.arange(len(counts))
    colours = ["tab:blue" if task_categories is None or c in task_categories else "tab:gray"
               for c in counts.index]
    ax.bar(x, counts.values, color=colours, width=0.9, label="all notes")
    if "_passed" in frame.columns:
        passing = frame[frame["_passed"] == 1]["_category"].fillna("(malformed)").value_counts()
        ax.bar(x, passing.reindex(counts.index, fill_value=0).values, color="black", alpha=0.35,
               width=0.9, label="passing the filter")
    ax.set_xticks(x)
    ax.set_xticklabels(counts.index if len(counts) <= 300 else [""] * len(counts), rotation=90,
                       fontsize=5 if len(counts) > 60 else 7)
    ax.set_xlim(-1, len(counts))
    ax.set_ylabel("notes")
    inside = "" if task_categories is None else (
        f"; {sum(c in task_categories for c in counts.index)} of {len(task_categories)} RuMedTop3 "
        f"categories covered (blue), others grey")
    ax.set_title(f"{len(counts)} categories{inside}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_note_length(frame: pd.DataFrame, groups: Groups,
                     real_lengths: dict[str, pd.Series] | None = None) -> Any:
    """Note length in words per facet value (box plots), next to real notes."""
    plt, sns = _setup()
    if "_length" not in frame.columns:
        raise SkipFigure("no response column and no length column")
    parts = [pd.DataFrame({"group": frame[groups.facet], "words": frame["_length"], "kind": "synthetic"})]
    for label, lengths in (real_lengths or {}).items():
        parts.append(pd.DataFrame({"group": label, "words": lengths.to_numpy(), "kind": "real"}))
    data = pd.concat(parts, ignore_index=True).dropna(subset=["words"])
    order = list(groups.facet_order) + list((real_lengths or {}).keys())
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(order)), 3.8))
    with _quiet():
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
    plt, sns = _setup()
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
    with _quiet():
        sns.boxplot(data=data, x="n symptoms", y="symptoms_recall", hue=groups.facet, order=order,
                    hue_order=groups.facet_order, showfliers=False, ax=ax)
    ax.set_xlabel("number of symptoms in the prompt")
    ax.legend(title=groups.facet, fontsize=7)
    fig.tight_layout()
    return fig


def plot_copy_vs_precision(frame: pd.DataFrame, groups: Groups, *, precision_threshold: float = 0.7,
                           max_points: int = 10000, seed: int = 0) -> Any:
    """Copy share (note n-grams found in the style example) against style precision."""
    plt, sns = _setup()
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
# Downstream experiment figures (used by medsyn_utils.downstream)
# --------------------------------------------------------------------------------------------

def plot_accuracy_per_setting(summary: pd.DataFrame) -> Any:
    """Grouped bars: acc@1/3/5 per setting, dev and test panels, error bars = sd over seeds."""
    plt, sns = _setup()
    splits = [s for s in ("dev", "test") if s in set(summary["split"])]
    settings = list(dict.fromkeys(summary["setting"]))
    ks = [c for c in summary.columns if c.startswith("acc@") and not c.endswith(" sd")]
    fig, axes = plt.subplots(1, len(splits), figsize=(max(6, 0.9 * len(settings)) * len(splits), 3.8),
                             squeeze=False, sharey=True)
    width = 0.8 / max(len(ks), 1)
    for ax, split in zip(axes[0], splits):
        part = summary[summary["split"] == split].set_index("setting").reindex(settings)
        x = np.arange(len(settings))
        for i, k in enumerate(ks):
            bars = ax.bar(x + (i - (len(ks) - 1) / 2) * width, part[k].values, width,
                          yerr=part[f"{k} sd"].values, capsize=2, label=k)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=2)
        ax.set_xticks(x)
        ax.set_xticklabels(settings, rotation=30, ha="right", fontsize=7)
        ax.set_title(split)
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_per_code_change(per_code: pd.DataFrame) -> Any:
    """Per-code change in acc@1 (sorted) with 95 % bootstrap intervals; hard codes in red."""
    plt, sns = _setup()
    data = per_code.sort_values("change", ascending=False).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(min(max(8, 0.14 * len(data)), 30), 3.8))
    x = np.arange(len(data))
    colours = np.where(data["hard"], "tab:red", "tab:blue")
    low = (data["change"] - data["ci_low"]).clip(lower=0).fillna(0)
    high = (data["ci_high"] - data["change"]).clip(lower=0).fillna(0)
    ax.errorbar(x, data["change"], yerr=[low, high], fmt="none", ecolor="tab:gray", elinewidth=1.2,
                alpha=0.7)
    ax.scatter(x, data["change"], c=colours, s=12, zorder=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(data["code"], rotation=90, fontsize=5 if len(data) > 60 else 7)
    ax.set_xlim(-1, len(data))
    ax.set_ylabel("change in acc@1 (other − base)")
    ax.set_title("per-code change; red = hard codes (rarest quartile by train frequency)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# All figures
# --------------------------------------------------------------------------------------------

def real_note_lengths() -> tuple[dict[str, pd.Series], str | None]:
    """Word counts of real notes (RuMedTop3 train complaints, full train notes) for comparison."""
    from medsyn_utils.core.corpus import load_full_notes, load_rumedtop3
    from medsyn_utils.core.errors import DataError

    try:
        complaints = load_rumedtop3("train")["text"]
        full = load_full_notes("train")["full_text"]
    except DataError as error:
        return {}, f"real notes unavailable ({error})"
    return {"real complaints\n(RuMedTop3 train)": complaints.str.count(_WORD.pattern),
            "real full notes\n(train)": full.str.count(_WORD.pattern)}, None


def task_categories() -> tuple[set[str] | None, str | None]:
    """The 105 RuMedTop3 categories (``None`` with a note when the data is unavailable)."""
    from medsyn_utils.core.corpus import load_rumedtop3
    from medsyn_utils.core.errors import DataError

    try:
        return set(load_rumedtop3("train")["code"]), None
    except DataError as error:
        return None, f"RuMedTop3 codes unavailable ({error})"


def make_figures(frame: pd.DataFrame, output_dir: str | Path, *,
                 group_columns: Sequence[str] = ("generation_model", "prior"),
                 recall_threshold: float = 0.65, precision_threshold: float = 0.7,
                 compare_real: bool = True, max_points: int = 10000, seed: int = 0,
                 title: str = "Figures") -> list[FigureRecord]:
    """Draw every figure that the table's columns allow, save PNG + PDF and ``index.md``.

    ``group_columns``: the first present one makes the panels (e.g. ``generation_model``), the
    second the colours (e.g. ``prior``). Figures whose inputs are missing are recorded as
    skipped with the reason. Returns the index entries.
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
    notes = [f"{len(frame)} notes; panels by {groups.facet}, colours by {groups.hue}"]
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
         f"Share of notes passing the filter per {groups.facet} and {groups.hue} "
         f"({derived.get('_passed', 'no filter')}).",
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
    records = []
    for name, caption, draw in specs:
        try:
            fig = draw()
        except SkipFigure as reason:
            records.append(FigureRecord(name=name, caption=caption, skipped=str(reason)))
            continue
        records.append(save_figure(fig, output_dir, name, caption))
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
    import json

    from medsyn_utils.core.paths import resolve

    record = resolve(run_dir) / "04_bertscore_evaluation.json"
    if not record.is_file():
        return None
    try:
        used = json.loads(record.read_text(encoding="utf-8")).get("metrics", {}).get("thresholds_used")
    except (OSError, ValueError):
        return None
    if not isinstance(used, dict) or not {"symptoms_recall", "anamnesis_precision"} <= set(used):
        return None
    return {"symptoms_recall": float(used["symptoms_recall"]),
            "anamnesis_precision": float(used["anamnesis_precision"])}


def summary_metrics(frame: pd.DataFrame, records: Sequence[FigureRecord],
                    group_columns: Sequence[str] = ("generation_model", "prior"),
                    recall_threshold: float = 0.65, precision_threshold: float = 0.7) -> dict[str, Any]:
    """Key numbers for the stage record: rows, labels found, share passing, figures made/skipped."""
    data, derived = add_derived_columns(frame, recall_threshold=recall_threshold,
                                        precision_threshold=precision_threshold)
    out: dict[str, Any] = {"rows": int(len(frame))}
    for column in group_columns:
        if column in frame.columns:
            values = frame[column]
            out[f"{column}_values"] = sorted(values.dropna().astype(str).unique().tolist()) + (
                [MISSING_LABEL] if values.isna().any() else [])
    if "_passed" in data.columns:
        out["share_passed"] = float(data["_passed"].mean())
        out["passed_from"] = derived["_passed"]
    for score in SCORE_COLUMNS:
        if score in data.columns and data[score].notna().any():
            out[f"{score}_mean"] = float(data[score].mean())
    if "_category" in data.columns:
        out["categories"] = int(data["_category"].nunique())
    out["figures_saved"] = [r.name for r in records if not r.skipped]
    out["figures_skipped"] = {r.name: r.skipped for r in records if r.skipped}
    return out
