"""Notebook 08's note browser: each note with its symptoms highlighted, filterable (ipywidgets)."""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd

COLOURS = {"affirmed": "#b7e4c7", "negated": "#f4a3a3", "unrequested": "#ffe08a"}


def highlight(note: str, symptom_spans: str, unrequested_spans: str) -> str:
    """The note as HTML: affirmed green, negated red, unrequested yellow (title = the symptom)."""
    marks = [(a, b, status, name) for name, status, a, b in json.loads(symptom_spans or "[]")
             if a is not None]
    marks += [(a, b, "unrequested", name) for name, a, b in json.loads(unrequested_spans or "[]")]
    marks.sort()
    parts, at = [], 0
    for a, b, status, name in marks:
        if a < at:
            continue  # overlapping marks: the first wins
        parts.append(html.escape(note[at:a]))
        parts.append(f'<mark class="{status}" title="{html.escape(status)}: {html.escape(name)}" '
                     f'style="background:{COLOURS[status]}">{html.escape(note[a:b])}</mark>')
        at = b
    parts.append(html.escape(note[at:]))
    return "".join(parts)


def note_card(row: pd.Series) -> str:
    coverage = row["symptom_coverage"]
    head = (f"<b>{html.escape(str(row.get('idx', '')))}</b> · {html.escape(str(row.get('ICD-10', '')))} · "
            f"{html.escape(str(row['generation_model']))} · {html.escape(str(row['prior']))} · coverage "
            f"{'—' if pd.isna(coverage) else f'{coverage:.2f}'}")
    missing = ", ".join(row["symptoms_missing"]) or "none"
    extra = ", ".join(row["unrequested_findings"]) or "none"
    return (f'<div class="note-card" style="border:1px solid #ccc;padding:6px;margin:4px 0">{head}'
            f'<p>{highlight(str(row["response"]), row["symptom_spans"], row["unrequested_spans"])}</p>'
            f'<small class="missing">missing: {html.escape(missing)}</small><br>'
            f'<small class="unrequested">unrequested: {html.escape(extra)}</small></div>')


def filter_notes(notes: pd.DataFrame, model: str = "all", prior: str = "all", code: str = "",
                 coverage: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    keep = pd.Series(True, index=notes.index)
    if model != "all":
        keep &= notes["generation_model"].astype(str) == model
    if prior != "all":
        keep &= notes["prior"].astype(str) == prior
    if code and "ICD-10" in notes.columns:
        keep &= notes["ICD-10"].astype(str).str.startswith(code.strip().upper())
    cov = notes["symptom_coverage"].astype(float)
    keep &= cov.isna() | cov.between(coverage[0], coverage[1])
    return notes[keep]


def browser(notes: pd.DataFrame, page: int = 10) -> Any:
    """Dropdowns (model, prior), a code box and a coverage range; the matching notes below."""
    import ipywidgets as widgets

    model = widgets.Dropdown(options=["all", *sorted(notes["generation_model"].astype(str).unique())],
                             description="model")
    prior = widgets.Dropdown(options=["all", *sorted(notes["prior"].astype(str).unique())],
                             description="prior")
    code = widgets.Text(value="", description="code", placeholder="e.g. J06")
    coverage = widgets.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.05,
                                        description="coverage")
    shown = widgets.HTML()

    def update(*_: Any) -> None:
        chosen = filter_notes(notes, model.value, prior.value, code.value, coverage.value)
        cards = "".join(note_card(row) for _, row in chosen.head(page).iterrows())
        shown.value = (f'<div class="evaluation-browser"><p class="count">{len(chosen)} notes match; '
                       f"first {min(page, len(chosen))} shown</p>{cards}</div>")

    for control in (model, prior, code, coverage):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([model, prior]), widgets.HBox([code, coverage]), shown])
