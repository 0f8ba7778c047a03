"""The scoring stage's public names in one import (``from medsyn_utils.score import scoring``).

The code lives by job: :mod:`~medsyn_utils.score.scorer` (the one-pass BERTScore scorer),
:mod:`~medsyn_utils.score.layout` (tables in, the published layout),
:mod:`~medsyn_utils.score.filter` (which criteria apply, the paper's rule, the sweep),
:mod:`~medsyn_utils.score.calibration` (thresholds mapped to the encoder),
:mod:`~medsyn_utils.score.chunks` (resumable scoring of large tables) and
:mod:`~medsyn_utils.score.stage` (score a table, the stage record's numbers, the stage input).
Figures: :mod:`medsyn_utils.analysis.scoring_figures`. Tables on disk:
:mod:`medsyn_utils.core.artefacts`.
"""

from medsyn_utils.score.calibration import (
    Calibration,
    calibrate,
    calibration_pairs,
    map_threshold,
    paper_reference_scorer,
)
from medsyn_utils.score.chunks import chunk_folder, score_in_chunks
from medsyn_utils.score.filter import (
    FILTER_GROUPS,
    PAPER_THRESHOLDS,
    criteria_applied,
    filter_applies,
    filter_groups,
    group_counts,
    passed_filter,
    threshold_sweep,
)
from medsyn_utils.score.layout import (
    CONTEXT_COLUMNS,
    SCORED_COLUMNS,
    ScoringInput,
    check_table,
    load_scoring_input,
    published_table,
    read_scoring_input,
)
from medsyn_utils.score.scorer import PRIVATE_MARK, NoteScorer, ScoreReport
from medsyn_utils.score.stage import (
    DEMO_LABEL,
    DEMO_MODEL,
    best_and_worst,
    demo_notes,
    score_table,
    stage_data_files,
    stage_input,
    stage_metrics,
    summary,
)

__all__ = [
    "CONTEXT_COLUMNS", "DEMO_LABEL", "DEMO_MODEL", "FILTER_GROUPS", "PAPER_THRESHOLDS",
    "PRIVATE_MARK", "SCORED_COLUMNS", "Calibration", "NoteScorer", "ScoreReport", "ScoringInput",
    "best_and_worst", "calibrate", "calibration_pairs", "check_table", "chunk_folder",
    "criteria_applied", "demo_notes", "filter_applies", "filter_groups", "group_counts",
    "load_scoring_input", "map_threshold", "paper_reference_scorer", "passed_filter",
    "published_table", "read_scoring_input", "score_in_chunks", "score_table", "stage_data_files",
    "stage_input", "stage_metrics", "summary", "threshold_sweep",
]
