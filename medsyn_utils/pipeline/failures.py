"""What a failed stage left: one line for the user naming the notebook, the cell and the error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsyn_utils.pipeline.stages import Stage


@dataclass
class StageFailure:
    """What a failed notebook left: one line for the user, the details for the manifest."""

    message: str
    cell: int | None = None
    source_line: str | None = None
    error: str | None = None


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= 80 else text[:77] + "..."
    return ""


def describe_failure(stage: Stage, error: BaseException, executed: Path) -> StageFailure:
    """One message naming the notebook, the cell and the error of a failed stage."""
    from papermill.exceptions import PapermillExecutionError

    kept = f"partly executed notebook kept at {executed}"
    if isinstance(error, PapermillExecutionError):
        cell = _source_cell_number(executed, error.cell_index)
        line = _first_line(error.source or "")
        evalue = " ".join(str(error.evalue).split())
        if len(evalue) > 600:  # keep the end too: the kit's errors close with the fix
            evalue = evalue[:300] + " … " + evalue[-250:]
        what = f"{error.ename}: {evalue}" if evalue else str(error.ename)
        where = f"cell {cell}" if cell is not None else f"cell index {error.cell_index}"
        return StageFailure(
            message=f"{stage.notebook} failed in {where} (`{line}`): {what}; {kept}",
            cell=cell, source_line=line, error=what)
    what = " ".join(f"{type(error).__name__}: {error}".split())
    return StageFailure(message=f"{stage.notebook} failed: {what}; {kept}", error=what)


def _source_cell_number(executed: Path, cell_index: int) -> int | None:
    """1-based number, in the source notebook, of a cell of the executed notebook.

    papermill adds an error banner and an ``injected-parameters`` cell; neither is in the source.
    """
    try:
        import nbformat
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # the executed notebook may be unreadable after a crash
        return cell_index + 1
    def tags(cell: Any) -> list[str]:
        return cell.get("metadata", {}).get("tags", [])

    # the error index counts the cells before papermill added its banner cells
    cells = [cell for cell in nb.cells if "papermill-error-cell-tag" not in tags(cell)]
    number = 0
    for index, cell in enumerate(cells):
        if "injected-parameters" in tags(cell):
            continue
        number += 1
        if index == cell_index:
            return number
    return None

