"""Stage 05 (notebook 05): the paper's figures.

The one source of the stage's parameters (see :mod:`medsyn_utils.core.config`): add a field
here and the same name and default in the notebook's parameters cell.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from medsyn_utils.core.config import StageConfig, data_dir_field, field, run_dir_field, seed_field
from medsyn_utils.score.filter import PAPER_THRESHOLDS


class AnalysisConfig(StageConfig):
    """Parameters of the analysis stage."""

    STAGE: ClassVar[str] = "analysis"
    CLI_ALIASES: ClassVar[dict[str, str]] = {"run_dir": "medsyn run --out",
                                             "data_dir": "MEDSYN_DATA_DIR"}

    run_dir: str = run_dir_field('run folder: reads scored.parquet, writes figures/ and the stage record')
    data_dir: str = data_dir_field()
    input_path: str = field("",
        "scored table (.parquet or .csv, e.g. the published full-dataset-scored-anaon.csv); empty means the run folder's scored.parquet")
    demo: bool = field(False,
        'no scored table: draw a small made-up table (DEMO DATA watermark) instead of stopping')
    group_columns: list[str] = field(["generation_model",
        "prior"], 'first column: one panel per value; second: one colour per value')
    recall_threshold: float = field(PAPER_THRESHOLDS["symptoms_recall"],
        'symptoms_recall threshold drawn, and applied where passed_filter is absent', ge=0, le=1)
    precision_threshold: float = field(PAPER_THRESHOLDS["anamnesis_precision"],
        'anamnesis_precision threshold drawn, and applied where passed_filter is absent', ge=0, le=1)
    thresholds_from_scoring: bool = field(True,
        "on the run's own scored.parquet, use the thresholds its scoring stage applied")
    output_dir: str = field("",
        "folder for the PNG and PDF files and index.md; empty means the run folder's figures/")
    compare_real: bool = field(True,
        'draw real RuMedTop3 notes next to the synthetic ones (lengths, code coverage)')
    max_points: int = field(10000, 'most points drawn in a scatter plot', ge=100)
    demo_rows: int = field(300, 'rows of the demo table (demo: true only)', ge=10)
    seed: int = seed_field('seed of the demo table and of the scatter subsample')


__all__ = ["AnalysisConfig"]
