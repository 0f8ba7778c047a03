"""Each distinct text embedded once per encoder, layer and precision, shared by scoring and evaluation.

The scorer compares token states and keeps them in memory for one table; what outlives it is
each text's *mean-pooled* vector (float32, the mean of the text's token states at the scorer's
layer, special tokens included, no "passage: " prefix), written to a small SQLite file keyed by
the scorer's hash — model, version, layer, windowing and precision (``_bf16``, ``_int8``…), so
vectors of different precisions never mix — and the text's SHA-256. Token states are not stored:
at ~300 kB a note they would outgrow the notes themselves; scoring embeds each text once per
table anyway.

:func:`medsyn_utils.score.embeddings.embed_texts` is the public door: the evaluation stage asks
for vectors and gets those already written by scoring (same encoder, layer, precision,
windowing), embedding only the rest.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medsyn_utils.core.paths import cache_dir as user_cache_dir

SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (sha TEXT PRIMARY KEY, dim INTEGER, vec BLOB)"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Pooled vectors of one scorer identity (``key`` = the scorer's hash) under ``folder``."""

    def __init__(self, folder: str | Path, key: str) -> None:
        self.key = key
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:180]
        self.path = Path(folder).expanduser() / f"{name}-{text_key(key)[:12]}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def get(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ``texts`` that have one."""
        wanted = {text_key(t): t for t in texts}
        found: dict[str, np.ndarray] = {}
        keys = list(wanted)
        with self._connect() as db:
            for first in range(0, len(keys), 500):
                part = keys[first:first + 500]
                rows = db.execute(f"SELECT sha, vec FROM vectors WHERE sha IN ({','.join('?' * len(part))})",
                                  part).fetchall()
                found.update({wanted[sha]: np.frombuffer(vec, dtype="<f4").copy() for sha, vec in rows})
        return found

    def put(self, vectors: Mapping[str, np.ndarray]) -> None:
        rows = [(text_key(t), int(v.shape[0]), np.asarray(v, dtype="<f4").tobytes())
                for t, v in vectors.items()]
        with self._connect() as db:
            db.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?)", rows)

    def put_states(self, states: Mapping[str, Any]) -> None:
        """Pool token states (text → tensor tokens × hidden) and store them."""
        self.put({t: x.float().mean(dim=0).cpu().numpy() for t, x in states.items()})

    def __len__(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])


def cache_for(scorer: Any, cache_dir: str | Path | None = None) -> EmbeddingCache:
    """The cache of ``scorer``'s identity in ``cache_dir`` (default: the user's cache)."""
    folder = Path(cache_dir) if cache_dir else user_cache_dir("embeddings")
    return EmbeddingCache(folder, scorer.hash)
