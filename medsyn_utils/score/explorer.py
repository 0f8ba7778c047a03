"""The threshold explorer of notebook 04: what passes the filter at other thresholds.

Logic first (plain tables, unit-tested): the share passing per generation model and prior at a
pair of thresholds, and the notes just below and just above each threshold. Then a thin
ipywidgets view: two sliders (recall, precision) with the paper's and the in-use (calibrated)
thresholds marked on a small scale, the live share table, and the neighbouring notes side by side
with their symptoms and style example. The view is HTML only (no plotting library).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.score.filter import PAPER_THRESHOLDS, passed_filter

SCORES = ("symptoms_recall", "anamnesis_precision")
RULES = {"symptoms_recall": ">=", "anamnesis_precision": ">"}  # the paper's rule per score
GROUPS = ("generation_model", "prior")
NOTE_FIELDS = ("idx", "ICD-10", "prior", "symptoms_recall", "anamnesis_precision", "symptoms",
               "response", "anamnesis")
MISSING_LABEL = "—"  # a group value that is missing (NaN / None)


def _check(scored: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in scored.columns]
    if missing:
        raise InputTableError(f"scored table lacks column(s) {', '.join(missing)}: pass the table "
                              f"written by stage 04 (scored.parquet)")


def _check_threshold(name: str, value: float) -> float:
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ParameterError(f"{name} threshold {value} must lie in 0..1")
    return value


def passing(scored: pd.DataFrame, recall_threshold: float, precision_threshold: float) -> np.ndarray:
    """Which notes pass at these thresholds (the filter's own rule, empty responses never pass)."""
    _check(scored, SCORES)
    empty = scored["empty_response"] if "empty_response" in scored.columns else None
    applies = scored["filter_applies"] if "filter_applies" in scored.columns else None
    return passed_filter(scored["symptoms_recall"], scored["anamnesis_precision"],
                         _check_threshold("symptoms_recall", recall_threshold),
                         _check_threshold("anamnesis_precision", precision_threshold), empty,
                         applies)


def share_passing(scored: pd.DataFrame, recall_threshold: float, precision_threshold: float,
                  by: Sequence[str] = GROUPS) -> pd.DataFrame:
    """Notes, notes passing and the share passing per group (model × prior), then all notes."""
    _check(scored, list(by))
    ok = passing(scored, recall_threshold, precision_threshold)
    groups = scored[list(by)].astype(object).where(scored[list(by)].notna(), MISSING_LABEL)
    frame = groups.assign(passing=ok)
    table = (frame.groupby(list(by), sort=True)["passing"]
             .agg(notes="size", passing="sum").reset_index())
    total = pd.DataFrame([{**{name: "all" for name in by}, "notes": len(frame),
                           "passing": int(ok.sum())}])
    table = pd.concat([table, total], ignore_index=True)
    table["passing"] = table["passing"].astype(int)
    table["share_passing"] = table["passing"] / table["notes"].where(table["notes"] > 0)
    return table


def notes_near(scored: pd.DataFrame, score: str, threshold: float, k: int = 1) -> pd.DataFrame:
    """The ``k`` notes just below and just above ``threshold`` on ``score``, closest first.

    "Above" is the side that meets the criterion (``>=`` for recall, ``>`` for precision), so a
    note exactly at a precision threshold counts as below. Notes without the score (no reference)
    and empty responses are left out: the threshold does not decide them.
    """
    if score not in RULES:
        raise ParameterError(f"score {score!r} is not one of {', '.join(SCORES)}")
    if k < 1:
        raise ParameterError(f"k={k} must be at least 1")
    _check(scored, NOTE_FIELDS)
    threshold = _check_threshold(score, threshold)
    values = scored[score].astype(float)
    usable = values.notna()
    if "empty_response" in scored.columns:
        usable &= ~scored["empty_response"].fillna(False).astype(bool)
    meets = values >= threshold if RULES[score] == ">=" else values > threshold
    above = scored[usable & meets].sort_values(score, ascending=True, kind="stable").head(k)
    below = scored[usable & ~meets].sort_values(score, ascending=False, kind="stable").head(k)
    parts = [part[list(NOTE_FIELDS)].assign(side=side, rank=range(1, len(part) + 1))
             for side, part in (("just below", below), ("just above", above))]
    near = pd.concat(parts, ignore_index=True)
    near["distance"] = (near[score].astype(float) - threshold).abs()
    return near[["side", "rank", *NOTE_FIELDS, "distance"]]


def threshold_marks(in_use: Mapping[str, float],
                    paper: Mapping[str, float] = PAPER_THRESHOLDS) -> dict[str, dict[str, float]]:
    """Per score, the marked thresholds: the paper's and the one the filter uses (a NaN
    calibrated threshold, where no real note had that score, is left unmarked)."""
    marks = {}
    for score in SCORES:
        marks[score] = {"paper": _check_threshold(score, paper[score])}
        value = float(in_use.get(score, math.nan))
        if not math.isnan(value):
            marks[score]["in use"] = _check_threshold(score, value)
    return marks


# ---------------------------------------------------------------------------------- HTML view


def scale_html(value: float, marks: Mapping[str, float], width: int = 320) -> str:
    """A 0..1 scale (inline SVG) with a tick per mark and a dot at the slider's value."""
    pad, height = 10, 34
    x = lambda v: pad + (width - 2 * pad) * min(max(float(v), 0.0), 1.0)  # noqa: E731
    colours = ("#1f78b4", "#e31a1c", "#33a02c")
    parts = [f'<line x1="{pad}" y1="12" x2="{width - pad}" y2="12" stroke="#999"/>']
    for (label, mark), colour in zip(marks.items(), colours):
        parts.append(f'<line x1="{x(mark):.1f}" y1="4" x2="{x(mark):.1f}" y2="20" stroke="{colour}" '
                     f'stroke-width="2"><title>{html.escape(label)} {mark:.3f}</title></line>')
    parts.append(f'<circle cx="{x(value):.1f}" cy="12" r="5" fill="#222"/>')
    legend = " · ".join(f'<span style="color:{c}">{html.escape(label)} {mark:.3f}</span>'
                        for (label, mark), c in zip(marks.items(), colours))
    return (f'<svg width="{width}" height="{height - 10}">{"".join(parts)}</svg>'
            f'<div style="font-size:11px">{legend} · <b>now {value:.3f}</b></div>')


def share_html(table: pd.DataFrame) -> str:
    """The share-passing table as HTML (class ``medsyn-share`` for the tests to find)."""
    return table.to_html(index=False, classes="medsyn-share", float_format=lambda v: f"{v:.3f}",
                         na_rep="—", border=0)


def _note_cell(row: pd.Series | None, score: str) -> str:
    if row is None:
        return "<td><i>no note on this side</i></td>"
    other = "anamnesis_precision" if score == "symptoms_recall" else "symptoms_recall"
    value = lambda v: "—" if pd.isna(v) else f"{float(v):.3f}"  # noqa: E731
    text = lambda v: html.escape("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))  # noqa: E731
    return (f'<td style="vertical-align:top;white-space:pre-wrap;text-align:left">'
            f'<b>{text(row["idx"])}</b> {text(row["ICD-10"])} · {text(row["prior"])}<br>'
            f'{score} <b>{value(row[score])}</b> · {other} {value(row[other])}<br>'
            f'<u>symptoms</u>: {text(row["symptoms"])}<br><u>note</u>: {text(row["response"])}<br>'
            f'<u>style example</u>: {text(row["anamnesis"]) or "<i>none</i>"}</td>')


def near_html(near: pd.DataFrame, score: str, threshold: float) -> str:
    """The notes either side of one threshold, side by side (below | above)."""
    rows = []
    depth = int(near["rank"].max()) if len(near) else 1
    for rank in range(1, depth + 1):
        cells = []
        for side in ("just below", "just above"):
            match = near[(near["side"] == side) & (near["rank"] == rank)]
            cells.append(_note_cell(match.iloc[0] if len(match) else None, score))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="medsyn-near" data-score="{score}" style="table-layout:fixed;width:100%">'
            f'<caption style="text-align:left"><b>{score} {RULES[score]} {threshold:.3f}</b></caption>'
            f"<tr><th>just below (fails)</th><th>just above (passes)</th></tr>{''.join(rows)}</table>")


@dataclass
class ThresholdExplorer:
    """Two sliders and the views they drive; display it (or ``.box``) in JupyterLab."""

    scored: pd.DataFrame
    marks: dict[str, dict[str, float]]
    k: int
    box: Any = None
    sliders: dict[str, Any] = field(default_factory=dict)
    scales: dict[str, Any] = field(default_factory=dict)
    share: Any = None
    near: Any = None

    def thresholds(self) -> dict[str, float]:
        return {score: float(self.sliders[score].value) for score in SCORES}

    def update(self, *_: Any) -> None:
        now = self.thresholds()
        for score in SCORES:
            self.scales[score].value = scale_html(now[score], self.marks[score])
        self.share.value = share_html(share_passing(self.scored, now["symptoms_recall"],
                                                    now["anamnesis_precision"]))
        self.near.value = "".join(near_html(notes_near(self.scored, score, now[score], self.k),
                                            score, now[score]) for score in SCORES)

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.box._repr_mimebundle_(**kwargs)


def threshold_explorer(scored: pd.DataFrame, in_use: Mapping[str, float],
                       paper: Mapping[str, float] = PAPER_THRESHOLDS,
                       k: int = 1) -> ThresholdExplorer | None:
    """The explorer widget, starting at the thresholds in use; ``None`` without ipywidgets."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    _check(scored, (*NOTE_FIELDS, *GROUPS))
    view = ThresholdExplorer(scored=scored, marks=threshold_marks(in_use, paper), k=k)
    rows = []
    for score in SCORES:
        start = view.marks[score].get("in use", view.marks[score]["paper"])
        slider = widgets.FloatSlider(value=start, min=0.0, max=1.0, step=0.001,
                                     readout_format=".3f", continuous_update=False,
                                     description=f"{score} {RULES[score]}",
                                     style={"description_width": "170px"},
                                     layout=widgets.Layout(width="520px"))
        slider.add_class(f"medsyn-slider-{score}")
        buttons = []
        for label, value in view.marks[score].items():
            button = widgets.Button(description=label, layout=widgets.Layout(width="80px"),
                                    tooltip=f"set to the {label} threshold {value:.3f}")
            button.on_click(lambda _, s=slider, v=value: setattr(s, "value", v))
            buttons.append(button)
        view.sliders[score], view.scales[score] = slider, widgets.HTML()
        slider.observe(view.update, names="value")
        rows.append(widgets.HBox([slider, *buttons, view.scales[score]]))
    view.share, view.near = widgets.HTML(), widgets.HTML()
    view.update()
    view.box = widgets.VBox([*rows, widgets.HTML("<b>share passing per model and prior</b>"),
                             view.share, view.near])
    view.box.add_class("medsyn-threshold-explorer")
    return view
