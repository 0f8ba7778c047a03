"""Resumable scoring of large tables: chunks written as they finish, a re-run skips them.

Each chunk of ``chunk_rows`` notes is scored on its own (its texts embedded within the chunk, idf
weights from the whole table) and written to ``<folder>/<key>.parquet`` as soon as it is done.
The key hashes the encoder's hash, the batch settings and the note fingerprints of the chunk's
rows (note, symptom string, example), so a chunk is reused only for exactly the same work, and
the assembled table is byte-for-byte the one an uninterrupted run gives. Progress (rate, ETA)
goes to stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medsyn_utils.core import artefacts
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.score.scorer import SCORE_COLUMNS, NoteScorer, reference_of, text_of

CHUNK_SUFFIX = ".chunks"


def chunk_folder(out: str | os.PathLike[str]) -> Path:
    """Where the chunks of an output file are kept while it is being scored: ``<out>.chunks/``."""
    out = Path(out)
    return out.with_name(out.name + CHUNK_SUFFIX)


def note_fingerprint(note: Any, symptoms: Any, example: Any) -> str:
    """A short hash of what a note's scores depend on: the note and its two references."""
    blob = json.dumps([text_of(note).strip(), reference_of(symptoms), reference_of(example)],
                      ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def chunk_keys(scorer: NoteScorer, notes: Sequence[Any], symptoms: Sequence[Any],
               examples: Sequence[Any], chunk_rows: int) -> list[str]:
    """One key per chunk: encoder hash, batch settings (they move the last float bits) and the
    fingerprints of the chunk's notes; with idf on, also every reference of the table."""
    prints = [note_fingerprint(*row) for row in zip(notes, symptoms, examples)]
    setting = [scorer.hash, scorer.device, scorer.batch_size, scorer.max_batch_tokens,
               scorer.pair_batch_size, chunk_rows]
    if scorer.idf:
        setting.append(hashlib.sha256("\n".join(prints).encode()).hexdigest())
    keys = []
    for first in range(0, len(prints), chunk_rows):
        blob = json.dumps([setting, prints[first:first + chunk_rows]])
        keys.append(hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24])
    return keys


def score_in_chunks(scorer: NoteScorer, notes: Sequence[Any], symptoms: Sequence[Any],
                    examples: Sequence[Any], folder: str | os.PathLike[str], *, chunk_rows: int = 256,
                    progress: bool = True, engine: str = "local",
                    ray_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """:meth:`NoteScorer.iter_score` columns for every note, resuming from ``folder``.

    Finished chunks found in ``folder`` are read back, not scored again; each new chunk is written
    there (atomically) as soon as it is done, so a crash loses at most the chunks in flight.
    ``engine="ray"`` scores the chunks on Ray actors (``ray_options``: ``address``, ``actors``,
    ``cpus_per_actor``, ``gpus_per_actor``); the table is the same.
    """
    from tqdm.auto import tqdm

    if chunk_rows < 1:
        raise ParameterError(f"chunk_rows={chunk_rows} must be >= 1")
    folder = Path(folder)
    artefacts.check_writable(folder / "probe.parquet", what="chunk folder")
    folder.mkdir(parents=True, exist_ok=True)
    keys = chunk_keys(scorer, notes, symptoms, examples, chunk_rows)
    files = [folder / f"{key}.parquet" for key in keys]
    todo = [k for k, file in enumerate(files) if not file.is_file()]
    n = len(notes)
    done_rows = n - sum(min(chunk_rows, n - k * chunk_rows) for k in todo)
    bar = tqdm(total=n, initial=done_rows, desc="scoring notes", unit="note", disable=not progress,
               file=sys.stderr, smoothing=0.1)
    if engine == "ray":
        from medsyn_utils.score.ray_engine import score_chunks

        finished = score_chunks(scorer, notes, symptoms, examples, todo, chunk_rows,
                                **dict(ray_options or {}))
    elif engine == "local":
        finished = scorer.iter_score(notes, symptoms, examples, chunk_rows=chunk_rows,
                                     progress=False, only_chunks=todo, cache_per_chunk=True)
    else:
        raise ParameterError(f"scoring engine={engine!r} is unknown: use 'local' or 'ray'")
    try:
        for first, frame in finished:
            artefacts.write_table(frame.reset_index(drop=True), files[first // chunk_rows])
            bar.update(len(frame))
    finally:
        bar.close()
    frames = []
    for k, file in enumerate(files):
        frame = pd.read_parquet(file)[list(SCORE_COLUMNS)]
        frame.index = pd.RangeIndex(k * chunk_rows, k * chunk_rows + len(frame))
        frames.append(frame)
    return pd.concat(frames) if frames else pd.DataFrame(columns=list(SCORE_COLUMNS))


def remove_chunks(folder: str | os.PathLike[str]) -> None:
    """Drop a chunk folder once the table it was building is written."""
    folder = Path(folder)
    if folder.is_dir() and folder.name.endswith(CHUNK_SUFFIX):  # chunks and torn temporary files
        shutil.rmtree(folder)
