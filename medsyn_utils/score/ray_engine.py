"""Scoring on a Ray cluster (``scoring.engine: ray``): scorer actors, the driver keeps the chunks.

Each actor builds the same :class:`~medsyn_utils.score.scorer.NoteScorer` once (its
``settings``), prepares the table once (token ids and idf weights of the whole table, as the
local engine does) and scores the chunks it is handed. Finished chunks come back to the driver,
which writes each one as the local engine does (``<out>.chunks/``), so the assembled table is the
local engine's, row for row, and a re-run resumes from the chunks already written. A dead actor is
restarted by Ray and its chunk tried again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from medsyn_utils.core.ray_cluster import actor_cpus, require_ray, start_ray
from medsyn_utils.score.scorer import NoteScorer, ScoreReport

COUNTED = ("rows", "texts_embedded", "sequences_embedded", "tokens_embedded", "long_texts",
           "truncated_texts", "long_rows", "empty_responses", "missing_symptoms",
           "missing_examples", "padded_tokens", "attention_cells")


class ScorerActor:
    """One encoder replica, loaded once, with the table prepared once."""

    def __init__(self, settings: dict[str, Any], table: tuple[list, list, list], chunk_rows: int,
                 threads: int) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.scorer = NoteScorer(**settings)
        self.table = table
        self.chunk_rows = chunk_rows
        self.prepared = self.scorer.prepare(*table)

    def score(self, chunk: int) -> tuple[int, pd.DataFrame, dict[str, Any]]:
        """Chunk number ``chunk`` → ``(first row, score frame, report counts)``."""
        first, frame = next(self.scorer.iter_score(
            *self.table, chunk_rows=self.chunk_rows, progress=False, only_chunks=[chunk],
            cache_per_chunk=True, prepared=self.prepared))
        return first, frame, self.scorer.last_report.as_dict()


def score_chunks(scorer: NoteScorer, notes: Sequence[Any], symptoms: Sequence[Any],
                 examples: Sequence[Any], chunks: Sequence[int], chunk_rows: int, *,
                 address: str = "", actors: int = 2, cpus_per_actor: float = 0.0,
                 gpus_per_actor: float = 0.0) -> Iterator[tuple[int, pd.DataFrame]]:
    """Score ``chunks`` on Ray; yield ``(first row, frame)`` as each finishes (any order).

    Sets ``scorer.last_report`` to the sum of the actors' counts. Starts a local Ray on
    127.0.0.1 when ``address`` is empty (and stops it afterwards).
    """
    ray = require_ray()
    from ray.util import ActorPool

    started = start_ray(address)
    report = ScoreReport(hash=scorer.hash, max_length=scorer.max_length, windowed=scorer.windowed)
    scorer.last_report = report
    try:
        if not chunks:
            return
        cpus = actor_cpus(cpus_per_actor, actors, float(ray.cluster_resources().get("CPU", 1.0)))
        settings = dict(scorer.settings, device="cuda" if gpus_per_actor > 0 else scorer.device)
        table = ray.put((list(notes), list(symptoms), list(examples)))
        remote = ray.remote(ScorerActor).options(num_cpus=cpus, num_gpus=gpus_per_actor,
                                                  max_restarts=2, max_task_retries=2)
        threads = max(1, int(cpus)) if not os.environ.get("OMP_NUM_THREADS") else 0
        pool = ActorPool([remote.remote(settings, table, chunk_rows, threads)
                          for _ in range(max(1, min(actors, len(chunks))))])
        for first, frame, counts in pool.map_unordered(lambda a, k: a.score.remote(k), chunks):
            for name in COUNTED:
                setattr(report, name, getattr(report, name) + int(counts.get(name, 0)))
            report.seconds = round(report.seconds + float(counts.get("seconds", 0.0)), 3)
            yield first, frame
    finally:
        if started:
            ray.shutdown()

