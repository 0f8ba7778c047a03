"""Stage 04 from its config: the scorer, the thresholds (calibrated when asked) and the table.

Notebook 04 calls :func:`make_scorer` and :func:`thresholds` cell by cell (showing what each
gives); ``medsyn score`` calls :func:`run`, which does the same steps in one go. One place for
the calibration rule, so the two doors cannot drift apart.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from medsyn_utils.score.calibration import Calibration, calibrate, paper_reference_scorer
from medsyn_utils.score.config import ScoringConfig
from medsyn_utils.score.encoders import PAPER_ENCODER
from medsyn_utils.score.filter import PAPER_THRESHOLDS
from medsyn_utils.score.scorer import NoteScorer
from medsyn_utils.score.stage import score_table


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def make_scorer(config: ScoringConfig) -> NoteScorer:
    """The configured encoder (loaded once)."""
    return NoteScorer(config.encoder, config.layer, idf=config.idf, windowed=config.windowed,
                      batch_size=config.batch_size, device=config.device or None,
                      precision=config.precision,
                      embedding_cache_dir="")  # pooled vectors for the evaluation (user cache)


@dataclass
class Thresholds:
    """The thresholds the filter uses, and the calibration that mapped them (if on)."""

    used: dict[str, float]
    calibration: Calibration | None = None
    reference: NoteScorer | None = None  # the paper's encoder, where it loaded


def thresholds(config: ScoringConfig, scorer: NoteScorer, *, progress: bool = True,
               notice: Callable[[str], None] = _stderr) -> Thresholds:
    """As given, or (``calibrate``) mapped to this encoder by percentile on real train notes."""
    given = {"symptoms_recall": config.recall_threshold,
             "anamnesis_precision": config.precision_threshold}
    if not config.calibrate:
        if scorer.info.name != PAPER_ENCODER and given == PAPER_THRESHOLDS:
            notice(f"note: the thresholds {given['symptoms_recall']}/"
                   f"{given['anamnesis_precision']} are on the scale of {PAPER_ENCODER}; "
                   f"turn calibration on (--calibrate, calibrate: true) to map them to "
                   f"{scorer.info.name}")
        return Thresholds(given)
    reference = paper_reference_scorer(config.paper_encoder, batch_size=config.batch_size) \
        if config.paper_encoder else None
    calibration = calibrate(scorer, config.calibration_size, config.seed, paper_thresholds=given,
                            reference=reference, assumed_percentile=config.assumed_percentile,
                            progress=progress)
    return Thresholds(calibration.thresholds, calibration, reference)


def score(config: ScoringConfig, table: pd.DataFrame, scorer: NoteScorer,
          used: dict[str, float], out: str | os.PathLike[str] | None, *,
          progress: bool = True, keep_chunks: bool = False) -> pd.DataFrame:
    """Score ``table`` with the thresholds in use (chunked and resumable when ``out`` is given)."""
    return score_table(table, scorer, recall_threshold=used["symptoms_recall"],
                       precision_threshold=used["anamnesis_precision"],
                       copy_threshold=config.copy_threshold, out=out, progress=progress,
                       chunk_rows=config.chunk_rows, keep_chunks=keep_chunks,
                       engine=config.engine, ray_options=dict(
                           address=config.ray_address, actors=config.actors,
                           cpus_per_actor=config.cpus_per_actor,
                           gpus_per_actor=config.gpus_per_actor))


__all__ = ["Thresholds", "make_scorer", "score", "thresholds"]
