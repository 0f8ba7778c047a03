"""Figures of the downstream experiment, drawn from ``downstream_metrics.json`` content.

* ``accuracy_per_setting``: test acc@1/3/5 per setting; settings trained with real notes on one
  axis, synthetic only on its own (its 30–50-point drop would squeeze the others); error bars
  only where a setting was fitted more than once (sd over seeds), never zero-length caps;
* ``changes_vs_base``: real + synthetic − each base (real only, oversampled, recombined,
  class-weighted, and the selection controls) in acc@1 points, one marker per classifier of the
  panel with its 95 % interval, panels for all codes and each form of hard codes with n; the
  axis spans at least ±3 points so that a 1–2-point effect shows; legend outside the data;
* ``per_code_change``: per-code change of real + synthetic (default classifier, exploratory).

With several models × priors, one figure set per group in its own folder, the group in every
title and in ``index.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.analysis.figure_io import FigureRecord, SkipFigure, save_figures, setup, write_index

KS = (1, 3, 5)
BASE_LABELS = {"real_only": "real only", "real_oversampled": "oversampled real",
               "real_recombined": "recombined real", "real_class_weighted": "class-weighted real",
               "real_synthetic_unselected": "all notes (no selection)",
               "real_synthetic_random": "random same-size"}


def _title(metrics: dict[str, Any]) -> str:
    return str(metrics.get("figure_title") or selection_title(metrics))


def selection_title(metrics: dict[str, Any]) -> str:
    """What the figures show: the selection of notes, written out."""
    chosen = metrics.get("selection", {})
    parts = [f"{k.replace('_', ' ')}: {', '.join(v)}" for k, v in chosen.items()
             if isinstance(v, list) and v]
    if chosen.get("select"):
        parts.append(f"select {chosen['select']}")
    return "all notes" + (f" ({'; '.join(parts)})" if parts else " (no selection)")


def _bars(ax: Any, settings: list[dict[str, Any]], split: str) -> None:
    x = np.arange(len(settings))
    width = 0.8 / len(KS)
    for i, k in enumerate(KS):
        values = np.array([e[split][f"acc@{k}"] for e in settings])
        xs = x + (i - (len(KS) - 1) / 2) * width
        bars = ax.bar(xs, values, width, label=f"acc@{k}")
        ax.bar_label(bars, fmt="%.2f", fontsize=5, padding=1)
        several = [j for j, e in enumerate(settings) if e.get("fits", 1) > 1
                   and f"{split}_sd_over_seeds" in e]
        if several:  # error bars only for settings fitted more than once
            ax.errorbar(xs[several], values[several], fmt="none", ecolor="black", elinewidth=0.8,
                        yerr=[settings[j][f"{split}_sd_over_seeds"][f"acc@{k}"] for j in several],
                        capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{e['setting']}\n({e.get('fits', 1)} fit{'s' if e.get('fits', 1) > 1 else ''})"
                        for e in settings], rotation=25, ha="right", fontsize=6)
    ax.set_ylim(0, 1.05)


def plot_accuracy_per_setting(metrics: dict[str, Any], split: str = "test") -> Any:
    """Grouped bars: acc@1/3/5 per setting on ``split``; synthetic only on its own axis."""
    plt, _ = setup()
    settings = [e for e in metrics.get("settings", []) if split in e]
    if not settings:
        raise SkipFigure("no setting ran")
    with_real = [e for e in settings if e.get("share_real", 1.0) > 0]
    alone = [e for e in settings if e.get("share_real", 1.0) == 0]
    widths = [max(len(with_real), 1), max(len(alone), 1)] if alone else [1]
    fig, axes = plt.subplots(1, len(widths), figsize=(7.0, 3.0), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    panels = [(axes[0][0], with_real, "trained with real notes")]
    if alone:
        panels.append((axes[0][1], alone, "synthetic notes only"))
    for ax, part, name in panels:
        if part:
            _bars(ax, part, split)
        ax.set_title(f"{name}", fontsize=7)
    axes[0][0].set_ylabel(f"{split} accuracy")
    n = metrics.get("n_test_visits")
    fig.suptitle(f"{_title(metrics)}" + (f" — n = {n} {split} visits" if n else ""), fontsize=7)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _panel_comparisons(metrics: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    panel = metrics.get("panel") or {}
    if panel:
        return {name: member.get("comparisons", []) for name, member in panel.items()}
    name = metrics.get("classifier", {}).get("name", "classifier")
    return {name: metrics.get("comparisons", [])}


def plot_changes(metrics: dict[str, Any], k: int = 1) -> Any:
    """real + synthetic − each base in test acc@``k`` (points), one marker per classifier with its
    95 % interval; panels: all codes and each form of hard codes, with n."""
    plt, _ = setup()
    per_classifier = _panel_comparisons(metrics)
    bases = [b for b in BASE_LABELS if any(c["other"] == "real_synthetic" and c["base"] == b
                                          for cs in per_classifier.values() for c in cs)]
    if not bases:
        raise SkipFigure("no pair of settings to compare (real_only and real_synthetic must run)")
    first = next(c for cs in per_classifier.values() for c in cs if c["other"] == "real_synthetic")
    groups = [g for g in first if g == "all_codes" or g.startswith("hard_")]
    fig, axes = plt.subplots(1, len(groups), figsize=(7.0, 0.45 * len(bases) + 1.4), sharey=True,
                             squeeze=False)
    y = np.arange(len(bases))
    offsets = np.linspace(-0.25, 0.25, len(per_classifier)) if len(per_classifier) > 1 else [0.0]
    span = 3.0
    for ax, group in zip(axes[0], groups):
        for offset, (name, comparisons) in zip(offsets, per_classifier.items()):
            found = {c["base"]: c for c in comparisons if c["other"] == "real_synthetic"}
            for i, base in enumerate(bases):
                entry = found.get(base, {}).get(group, {}).get(f"acc@{k}")
                if not entry:
                    continue
                change = 100 * entry["change"]
                span = max(span, abs(change))
                if entry.get("ci_low") is not None:
                    low, high = 100 * entry["ci_low"], 100 * entry["ci_high"]
                    span = max(span, abs(low), abs(high))
                    ax.errorbar(change, i + offset, xerr=[[max(change - low, 0)], [max(high - change, 0)]],
                                fmt="none", ecolor="gray", elinewidth=0.8)
                ax.plot(change, i + offset, "o", markersize=4,
                        color=f"C{list(per_classifier).index(name)}",
                        label=name if (i == 0 and ax is axes[0][0]) else None)
        part = first[group]
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlim(-1.1 * span, 1.1 * span)
        ax.set_title(f"{group.replace('_', ' ')}\n{part.get('n_codes', '?')} codes, "
                     f"{part.get('n_test', '?')} visits", fontsize=7)
        ax.set_xlabel(f"change in acc@{k} (points)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(axis="x", linewidth=0.3)
        ax.grid(axis="y", visible=False)
    axes[0][0].set_yticks(y)
    axes[0][0].set_yticklabels([f"real+synthetic − {BASE_LABELS[b]}" for b in bases], fontsize=6)
    axes[0][0].invert_yaxis()
    fig.suptitle(_title(metrics), fontsize=7)
    fig.legend(fontsize=6, loc="lower center", ncol=len(per_classifier), frameon=False,
               bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


def plot_per_code_change(per_code: pd.DataFrame, title: str = "") -> Any:
    """Per-code change in acc@1 (sorted) with 95 % intervals over that code's visits; hard codes
    in red, codes whose change survives Benjamini–Hochberg (q < 0.05) circled."""
    plt, _ = setup()
    if per_code is None or per_code.empty:
        raise SkipFigure("real_synthetic or real_only did not run: no per-code change")
    data = per_code.sort_values("change", ascending=False).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    x = np.arange(len(data))
    hard = data.get("hard_rarest_quartile", pd.Series(False, index=data.index)).astype(bool)
    if data["ci_low"].notna().any():
        low = (data["change"] - data["ci_low"].astype(float)).clip(lower=0).fillna(0)
        high = (data["ci_high"].astype(float) - data["change"]).clip(lower=0).fillna(0)
        ax.errorbar(x, 100 * data["change"], yerr=[100 * low, 100 * high], fmt="none",
                    ecolor="tab:gray", elinewidth=0.8, alpha=0.7)
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
    ax.set_title(f"{title} — {len(data)} codes, {int(data.get('n_test', pd.Series([0])).sum())} "
                 f"test visits", fontsize=7)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "group"


def _one_set(metrics: dict[str, Any], per_code: pd.DataFrame | None, folder: Path,
             demo: bool) -> list[FigureRecord]:
    title = _title(metrics)
    specs = [
        ("accuracy_per_setting", f"{title}: test acc@1/3/5 per setting; synthetic only on its own "
                                 "axis; error bars only where a setting was fitted more than once "
                                 "(sd over seeds).",
         lambda: plot_accuracy_per_setting(metrics)),
        ("changes_vs_base", f"{title}: real + synthetic − each base in test acc@1 (points), one "
                            "marker per classifier with its 95 % interval (paired bootstrap over "
                            "visits for all codes, cluster bootstrap over codes for hard codes).",
         lambda: plot_changes(metrics)),
        ("per_code_change", f"{title}: per-code change in acc@1 (real_synthetic − real_only, "
                            "default classifier) with 95 % intervals over that code's visits; "
                            "exploratory (about eight test visits per code), BH q < 0.05 circled.",
         lambda: plot_per_code_change(per_code, title)),
    ]
    return save_figures(specs, folder, demo=demo)


def write_downstream_figures(metrics: dict[str, Any], per_code: pd.DataFrame | None,
                             folder: str | Path) -> list[FigureRecord]:
    """Draw and save the downstream figures with ``index.md``; DEMO DATA when ``metrics['demo']``.

    One set for all selected notes, and one per model × prior group (in ``<folder>/<group>/``)."""
    demo = bool(metrics.get("demo"))
    folder = Path(folder)
    records = _one_set(metrics, per_code, folder, demo)
    notes = ["**DEMO DATA**: made-up notes, not model output"] if demo else []
    notes += [f"selection: {_title(metrics)}", f"synthetic notes: {metrics.get('synthetic_source', '')}"]
    for group in metrics.get("groups", []):
        label = " / ".join(str(group[c]) for c in ("generation_model", "prior") if c in group)
        panel = {n: m for n, m in (group.get("panel") or {}).items() if m.get("settings")}
        if not panel:
            continue
        first = next(iter(panel.values()))
        sub = {"settings": first["settings"], "comparisons": first["comparisons"], "panel": panel,
               "figure_title": f"{label} ({_title(metrics)})"}
        sub_records = _one_set(sub, None, folder / _slug(label), demo)
        write_index(sub_records, folder / _slug(label), title=f"Downstream ICD experiment: {label}",
                    notes=notes[:1] + [f"group: {label}"])
        notes.append(f"group {label}: figures in [{_slug(label)}/]({_slug(label)}/index.md)")
    write_index(records, folder, title=f"Downstream ICD experiment: {_title(metrics)}", notes=notes)
    return records
