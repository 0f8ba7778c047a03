"""What a run leaves: stage records, artefact rows, the manifest, and outputs set aside."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from medsyn_utils.core import artefacts
from medsyn_utils.core.provenance import now_iso
from medsyn_utils.pipeline.fingerprints import file_sha256
from medsyn_utils.pipeline.stages import MANIFEST, STAGE_BY_NAME, STAGES, Stage, later_stages


def count_rows(path: Path) -> int | None:
    """Rows of a table artefact (parquet, csv, jsonl, json list); ``None`` for other files."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _count_rows(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _count_rows(name: str, size: int, mtime_ns: int) -> int | None:
    path = Path(name)
    try:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq
            return int(pq.ParquetFile(path).metadata.num_rows)
        if suffix == ".jsonl":
            with open(path, encoding="utf-8") as handle:
                return sum(1 for line in handle if line.strip())
        if suffix == ".csv":
            import pandas as pd
            return int(len(pd.read_csv(path)))
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            return len(data) if isinstance(data, list) else None
    except (OSError, ValueError, ImportError):
        return None
    return None


def _artefact_rows(run_dir: Path, artefacts: Mapping[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, entry in artefacts.items():
        entry = dict(entry) if isinstance(entry, Mapping) else {"path": str(entry)}
        path = entry.get("path")
        if path is not None:
            full = Path(path) if Path(path).is_absolute() else run_dir / path
            entry["exists"] = full.exists()
            if entry.get("rows") is None and full.is_file():
                entry["rows"] = count_rows(full)
        rows[name] = entry
    return rows


def _artefact_path(run_dir: Path, entry: Any) -> Path | None:
    path = entry.get("path") if isinstance(entry, Mapping) else entry
    if not path:
        return None
    path = Path(str(path))
    return (path if path.is_absolute() else run_dir / path).resolve()


def own_outputs(run_dir: Path, stage: Stage) -> list[Path]:
    """The run-folder files a stage wrote: its declared outputs and its record's own artefacts.

    Does not need the stage record (an interrupted run leaves none): the stage table declares the
    outputs. Files the record lists that an upstream stage made (generation lists its input
    ``tasks.parquet``) are that stage's, not this one's.
    """
    run_dir = run_dir.resolve()
    later = later_stages(stage)
    upstream: set[Path | None] = set()
    for other in STAGES:
        if other is stage:
            continue
        upstream.update(run_dir / name for name in other.outputs)
        if other not in later:
            for entry in ((artefacts.read_stage_record(run_dir, other.record) or {}).get("artefacts") or {}).values():
                upstream.add(_artefact_path(run_dir, entry))
    found = [run_dir / name for name in stage.outputs]
    for entry in ((artefacts.read_stage_record(run_dir, stage.record) or {}).get("artefacts") or {}).values():
        path = _artefact_path(run_dir, entry)
        if path is not None and path not in upstream and path not in found:
            found.append(path)
    return found


def set_aside(run_dir: Path, paths: list[Path], stamp: str) -> list[str]:
    """Move files of the run folder to ``<run>/superseded/<stamp>/``; return the moved paths.

    Nothing is deleted: earlier results stay for comparison. Paths outside the run folder, the
    executed notebooks and the manifest are never moved.
    """
    run_dir = run_dir.resolve()
    moved: list[str] = []
    for path in paths:
        if not path.is_file():
            continue
        try:
            relative = path.resolve().relative_to(run_dir)
        except ValueError:  # outside the run folder: not the runner's to move
            continue
        if relative.parts[0] in ("notebooks", "superseded", MANIFEST):
            continue
        target = run_dir / "superseded" / stamp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved.append(str(Path("superseded") / stamp / relative))
    return moved


def set_aside_outputs(run_dir: Path, stage: Stage, stamp: str | None = None) -> list[str]:
    """Move a stage's own earlier outputs aside before a fresh re-run (``--force``, new inputs).

    Some stages resume from what they find (generation skips tasks already in its store, so a
    crash loses nothing); a fresh execution must start from nothing, so new tasks under the same
    ids never meet old notes.
    """
    stamp = stamp or now_iso().replace(":", "-")
    return set_aside(run_dir, own_outputs(run_dir, stage), stamp)


def file_hashes(run_dir: Path, paths: list[Path]) -> dict[str, str]:
    """SHA-256 of each existing file, keyed by its path relative to the run folder."""
    hashes = {}
    for path in paths:
        if path.is_file():
            try:
                key = str(path.resolve().relative_to(run_dir.resolve()))
            except ValueError:
                key = str(path)
            hashes[key] = file_sha256(path)
    return hashes


def load_manifest(run_dir: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        return manifest if isinstance(manifest, dict) else {}
    except (OSError, ValueError):
        return {}


def collect(run_dir: Path, stages: dict[str, dict[str, Any]]) -> tuple[dict, dict, dict]:
    """Models, artefacts and data files of every stage that has a record."""
    from medsyn_utils.core.data import registry

    models: dict[str, Any] = {}
    artefact_rows: dict[str, Any] = {}
    data: dict[str, Any] = {}
    known = registry()
    for name, entry in stages.items():
        stage = STAGE_BY_NAME[name]
        record = artefacts.read_stage_record(run_dir, stage.record)
        if record is None:
            continue
        models[name] = record.get("models", {})
        artefact_rows[name] = _artefact_rows(run_dir, record.get("artefacts", {}))
        entry["artefacts"] = artefact_rows[name]
        entry["metrics"] = record.get("metrics", {})
        for data_name, read in (record.get("data") or {}).items():
            if data_name not in known:
                continue
            sha = read.get("sha256") if isinstance(read, dict) else None  # the file the stage read
            data.setdefault(data_name, {"sha256": sha, "licence": known[data_name].licence,
                                        "url": known[data_name].url, "stages": []})
            data[data_name]["stages"].append(name)
    return models, artefact_rows, data

