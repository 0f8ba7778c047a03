"""Stage 01 (notebook 01): exploring the knowledge graph.

The one source of the stage's parameters (see :mod:`medsyn_utils.core.config`): add a field
here and the same name and default in the notebook's parameters cell.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from medsyn_utils.core.config import StageConfig, data_dir_field, field, run_dir_field


class GraphConfig(StageConfig):
    """Parameters of the graph stage."""

    STAGE: ClassVar[str] = "graph"
    NOTEBOOK_ONLY: ClassVar[dict[str, str]] = {
        name: "an exploration view of notebook 01; `medsyn kg` has its own queries"
        for name in ("focus_code", "radius", "top_k", "rebuild")}
    CLI_ALIASES: ClassVar[dict[str, str]] = {"run_dir": "medsyn run --out",
                                             "data_dir": "MEDSYN_DATA_DIR"}

    run_dir: str = run_dir_field("run folder for the stage's artefacts (relative to the project root)")
    data_dir: str = data_dir_field()
    focus_code: str = field("J06",
        'ICD-10 code to explore (category like J06 or sub-code like J06.9)')
    radius: int = field(1, 'ego-graph radius around the focus code', ge=1, le=2)
    top_k: int = field(15, 'symptoms to list and draw for the focus code', ge=1, le=200)
    rebuild: bool = field(False, 'rebuild the graph from the sources instead of loading the cache')


__all__ = ["GraphConfig"]
