"""Saving figures and their index: PNG + PDF for a paper column, a DEMO DATA watermark on
made-up data, ``index.md`` with every figure's caption or the reason it was skipped."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

DEMO_WATERMARK = "DEMO DATA"
DPI = 300  # print quality; figures are sized for a paper column (about 3.5 in) or page (7 in)


class SkipFigure(Exception):
    """Raised inside a figure function when its inputs are missing; becomes a note in the index."""


@dataclass
class FigureRecord:
    """One entry of the figure index: saved files, or the reason it was skipped."""

    name: str
    caption: str
    files: list[str] = field(default_factory=list)
    skipped: str | None = None


def watermark(fig: Any, text: str = DEMO_WATERMARK) -> None:
    """Write ``text`` large and diagonal across the figure (made-up data must say so)."""
    fig.text(0.5, 0.5, text, fontsize=40, color="red", alpha=0.25, ha="center", va="center",
             rotation=30, transform=fig.transFigure, zorder=100)


def save_figure(fig: Any, folder: str | Path, name: str, caption: str,
                formats: Sequence[str] = ("png", "pdf"), *, demo: bool = False) -> FigureRecord:
    """Save a figure as PNG and PDF under ``folder`` and close it; returns its index entry.

    ``demo``: the figure shows made-up data and gets the DEMO DATA watermark and caption."""
    import matplotlib.pyplot as plt

    if demo:
        watermark(fig)
        caption = f"{DEMO_WATERMARK} (made-up notes, not model output). {caption}"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        files.append(str(path))
    plt.close(fig)
    return FigureRecord(name=name, caption=caption, files=files)


def save_figures(specs: Sequence[tuple[str, str, Any]], folder: str | Path, *,
                 demo: bool = False) -> list[FigureRecord]:
    """Draw and save each ``(name, caption, draw)``; a :class:`SkipFigure` is recorded with why."""
    records = []
    for name, caption, draw in specs:
        try:
            fig = draw()
        except SkipFigure as reason:
            records.append(FigureRecord(name=name, caption=caption, skipped=str(reason)))
            continue
        records.append(save_figure(fig, folder, name, caption, demo=demo))
    return records


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


def setup() -> tuple[Any, Any]:
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence seaborn's own use of deprecated matplotlib arguments (not ours to fix)."""
    from matplotlib import MatplotlibDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
        yield


