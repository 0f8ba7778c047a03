"""Stage 03 as a function: :func:`generate_store` writes one note per task into the resumable
store, on this machine (``engine="local"``) or on a Ray cluster (``engine="ray"``).

It validates the task table, checks that the notes already in the store were written for these
tasks (fingerprints) and with these settings, skips the tasks that already have a note, sorts the
rest into length buckets, generates them batch by batch and appends each finished batch durably.
A run whose share of failed notes exceeds ``max_failed_share`` fails with the count.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from medsyn_utils.core.artefacts import task_fingerprints
from medsyn_utils.core.errors import InputTableError, ModelError, ParameterError
from medsyn_utils.generate.backends import Backend, make_backend
from medsyn_utils.generate.backends.base import (PROMPT_COLUMNS, Decoding,
                                                 completion_stop)
from medsyn_utils.generate.backends.transformers import TransformersBackend
from medsyn_utils.generate.batch import batch_records
from medsyn_utils.generate.config import GenerationConfig
from medsyn_utils.generate.models import pick_device, pick_dtype, resolve_model
from medsyn_utils.generate.report import GenerationReport, account, new_report
from medsyn_utils.generate.store import GenerationStore, is_failed, read_records
from medsyn_utils.tasks.table import load_task_table

ENGINES = ("local", "ray")
RESUME_KEYS = ("max_new_tokens", "min_new_tokens", "temperature", "top_p", "repetition_penalty",
               "seed", "do_sample")


# =========================================================================== task tables

def validate_tasks(tasks: Any, prompt_form: str | None = None):
    """Check a task table before any model is loaded; return it with string task ids.

    ``prompt_form`` ``chat`` needs ``user_prompt`` (``system_prompt`` optional), ``completion``
    needs ``completion_prompt``; ``None`` accepts either.
    """
    import pandas as pd

    if not isinstance(tasks, pd.DataFrame):
        raise InputTableError(f"tasks must be a pandas DataFrame, not {type(tasks).__name__}: "
                              f"load the table with medsyn_utils.tasks.table.load_task_table(path)")
    if tasks.empty:
        raise InputTableError("task table is empty: build tasks with notebook 02 or "
                              "`medsyn tasks` (or raise its number of tasks)")
    if "task_id" not in tasks.columns:
        raise InputTableError(f"task table lacks column ['task_id'] (has {list(tasks.columns)[:8]}): "
                              f"use a table built by notebook 02")
    if prompt_form in PROMPT_COLUMNS:
        needed = PROMPT_COLUMNS[prompt_form]
        missing = [name for name in needed if name not in tasks.columns]
        if missing:
            raise InputTableError(f"task table lacks columns {missing} needed for prompt_form="
                                  f"{prompt_form!r}: use a table built by notebook 02 or another "
                                  f"prompt_form")
    else:
        needed = tuple(col for cols in PROMPT_COLUMNS.values() for col in cols
                       if col in tasks.columns)
        if not needed:
            raise InputTableError("task table lacks columns ['user_prompt'] and "
                                  "['completion_prompt']: it needs at least one prompt column")
    frame = tasks.copy()
    if frame["task_id"].isna().any():
        raise InputTableError("task table has rows without task_id: give every row an id")
    frame["task_id"] = frame["task_id"].astype(str)
    duplicated = frame["task_id"][frame["task_id"].duplicated()].unique().tolist()
    if duplicated:
        raise InputTableError(f"task table repeats task ids {duplicated[:5]}: task ids must be "
                              f"unique")
    if prompt_form in PROMPT_COLUMNS:
        for column in PROMPT_COLUMNS[prompt_form]:
            values = frame[column]
            blank = values.isna() | (values.astype(str).str.strip() == "")
            if blank.any():
                ids = frame.loc[blank, "task_id"].head(5).tolist()
                raise InputTableError(f"task table column {column!r} is empty for tasks {ids}: "
                                      f"fill the prompts or drop those rows")
    return frame



# =========================================================================== the stage

def generate_store(tasks, store_path: str | os.PathLike[str],
                   config: GenerationConfig | None = None, *, backend: Backend | str | None = None,
                   progress: bool = True, api_key: str | None = None,
                   **overrides: Any) -> GenerationReport:
    """Generate one note per task into the resumable JSONL store at ``store_path``.

    The stage's one entry point (notebook 03, ``medsyn generate``, the benchmarks): every
    setting is a field of :class:`~medsyn_utils.generate.config.GenerationConfig` — pass a
    config, or its fields as keywords (``overrides``), checked before anything is read or loaded
    (a NaN temperature or an unknown key is one :class:`ParameterError`). ``backend`` may be a
    ready :class:`Backend` (then ``model``, ``device``… are ignored); ``api_key`` stays out of
    the config (and of every record).

    Tasks that already have a note written for the same task (fingerprint) are skipped, so
    calling this again after a crash (or with a larger ``max_tasks``) continues where the last
    run stopped; a store holding notes of other tasks or settings is refused unless ``force``,
    which sets it aside as ``<name>.<UTC time>.jsonl``. ``stop`` ``None`` is a blank line or the
    next patient header for plain completion and none for chat. ``engine="ray"`` runs ``actors``
    model replicas on a Ray cluster (:mod:`.ray_engine`). Returns counts and throughput;
    finished notes stay in the store even when a later batch fails.
    """
    if isinstance(backend, str):
        overrides["backend"] = backend
        backend = None
    cfg = stage_config(config, **overrides)
    return _generate(tasks, Path(store_path), cfg, backend, progress, api_key)


def stage_config(config: GenerationConfig | None = None, **overrides: Any) -> GenerationConfig:
    """A checked config from ``config`` and keyword overrides (``None`` for a text field is "")."""
    for name in ("device_map", "adapter", "revision", "base_url"):
        if name in overrides and overrides[name] is None:
            overrides[name] = ""
    if isinstance(overrides.get("base_url"), (list, tuple)):
        overrides["base_url"] = ",".join(overrides["base_url"])
    if isinstance(overrides.get("stop"), tuple):
        overrides["stop"] = list(overrides["stop"])
    base = config.model_dump() if config is not None else {}
    return GenerationConfig.check({**base, **overrides})


def _generate(tasks, store_path: Path, cfg: GenerationConfig, ready_backend: Backend | None,
              progress: bool, api_key: str | None) -> GenerationReport:
    backend: str | Backend = ready_backend if ready_backend is not None else cfg.backend
    model, batch_size, max_tasks, stop = cfg.model, cfg.batch_size, cfg.max_tasks, cfg.stop
    prompt_form, engine, seed, adapter = cfg.prompt_form, cfg.engine, cfg.seed, cfg.adapter or None
    device_map = cfg.device_map or None
    base_url = [u.strip() for u in cfg.base_url.split(",") if u.strip()] or None
    if base_url is not None and len(base_url) == 1:
        base_url = base_url[0]
    from tqdm.auto import tqdm

    _check_parameters(backend, prompt_form, engine, cfg.device, cfg.dtype, device_map)
    decoding = Decoding(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                        top_p=cfg.top_p, repetition_penalty=cfg.repetition_penalty, seed=seed,
                        min_new_tokens=cfg.min_new_tokens,
                        stop=tuple(stop) if stop is not None else ()).validate()
    frame = validate_tasks(tasks, prompt_form if prompt_form in PROMPT_COLUMNS else None)
    fingerprints = task_fingerprints(frame)
    set_aside = _claim_store(store_path, fingerprints, model, adapter, decoding, cfg.force,
                             check_settings=isinstance(backend, str))
    build = dict(model=model, device=cfg.device, dtype=cfg.dtype, device_map=device_map,
                 prompt_form=prompt_form, adapter=adapter, revision=cfg.revision or None,
                 seed=seed, base_url=base_url, api_key=api_key, concurrency=cfg.concurrency,
                 timeout=cfg.timeout, max_retries=cfg.max_retries, backoff=cfg.backoff,
                 tensor_parallel_size=cfg.tensor_parallel_size)
    with GenerationStore(store_path) as store:
        already = sum(1 for task_id in frame["task_id"] if task_id in store.done)
        pending = frame[~frame["task_id"].isin(store.done)]
        if max_tasks:
            pending = pending.head(max_tasks)
        ready = backend if isinstance(backend, Backend) else None
        if pending.empty:
            return GenerationReport(
                store_path=str(store_path), backend=ready.name if ready else str(backend),
                model_id=ready.spec.model_id if ready else str(model), prompt_form=prompt_form,
                tasks_total=len(frame), already_done=already, batch_size=batch_size,
                batch_size_used=batch_size, engine=engine, set_aside=set_aside,
                rejected_lines=list(store.rejected_lines))
        if engine == "ray":
            from medsyn_utils.generate import ray_engine

            spec, form = ray_engine.resolve_form(str(backend), build)
            validate_tasks(pending, form)
            report = ray_engine.run(
                str(backend), {**build, "model": spec, "prompt_form": form}, frame, pending,
                fingerprints, store, already, batch_size,
                completion_stop(decoding, form, stop is None), progress, cfg.empty_retries,
                ray_address=cfg.ray_address, actors=cfg.actors,
                gpus_per_actor=cfg.gpus_per_actor, cpus_per_actor=cfg.cpus_per_actor)
        else:
            ready = ready or make_backend(str(backend), **build)
            try:
                report = _run_local(ready, frame, pending, fingerprints, store, already,
                                    batch_size, decoding, stop is None, progress, tqdm,
                                    cfg.empty_retries)
            finally:
                if not isinstance(backend, Backend):
                    ready.close()
    report.set_aside = set_aside
    report.rejected_lines = list(store.rejected_lines)
    check_failed_share(store_path, frame, cfg.max_failed_share)
    return report


def _check_parameters(backend, prompt_form, engine, device, dtype, device_map) -> None:
    """What the config cannot check alone (a visible GPU, a ready backend), before any loading."""
    if isinstance(backend, str):
        if backend.strip().lower() == "transformers" and not device_map and engine == "local":
            pick_device(device)  # a missing GPU fails before anything is loaded
            pick_dtype(dtype, "cpu")
    elif engine == "ray":
        raise ParameterError("engine='ray' loads the model on each actor: pass the backend by "
                             "name (transformers or vllm), not a ready backend object")


def _claim_store(store_path: Path, fingerprints: dict[str, str], model: str,
                 adapter: str | None, decoding: Decoding, force: bool, *,
                 check_settings: bool) -> str | None:
    """Refuse a store written for other tasks or settings; with ``force`` set it aside instead.

    Returns where the old store went (``force``), else ``None``.
    """
    records = read_records(store_path)
    if not records:
        return None
    if force:
        return str(set_aside_store(store_path))
    problem = store_conflict(records, fingerprints, model, adapter, decoding, check_settings)
    if problem:
        raise ParameterError(f"{store_path} holds {problem}: write to a new store (another --out) "
                             f"or re-run with --force to set the old notes aside")
    return None


def set_aside_store(store_path: Path) -> Path:
    """Rename the store to ``<name>.<UTC time>.jsonl`` beside it (never deleted)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = store_path.with_name(f"{store_path.stem}.{stamp}{store_path.suffix}")
    number = 1
    while target.exists():
        number += 1
        target = store_path.with_name(f"{store_path.stem}.{stamp}-{number}{store_path.suffix}")
    os.replace(store_path, target)
    print(f"set aside {store_path} as {target.name}", file=sys.stderr)
    return target


def store_conflict(records: list[dict[str, Any]], fingerprints: dict[str, str], model: str,
                   adapter: str | None, decoding: Decoding, check_settings: bool) -> str | None:
    """What makes a store unfit to resume: notes of other tasks (fingerprint) or other settings."""
    foreign = [str(r["task_id"]) for r in records if str(r["task_id"]) in fingerprints
               and r.get("task_fingerprint") != fingerprints[str(r["task_id"])]]
    if foreign:
        return (f"{len(foreign)} note(s) written for other tasks than this task table (first: "
                f"{foreign[0]})")
    if not check_settings:
        return None
    try:
        wanted_model = resolve_model(str(model), adapter=adapter)
    except Exception:  # noqa: BLE001 - a bad model is reported when it is loaded
        return None
    first = records[0]
    wanted = {k: v for k, v in decoding.record("chat", 0).items() if k in RESUME_KEYS}
    found = {k: v for k, v in (first.get("decoding") or {}).items() if k in RESUME_KEYS}
    changed = [f"{k} {found.get(k)!r} → {v!r}" for k, v in wanted.items()
               if k in found and found[k] != v]
    if first.get("model_id") != wanted_model.model_id:
        changed.insert(0, f"model {first.get('model_id')!r} → {wanted_model.model_id!r}")
    if (first.get("adapter") or None) != (wanted_model.adapter or None):
        changed.append(f"adapter {first.get('adapter')!r} → {wanted_model.adapter!r}")
    return f"notes made with other settings ({'; '.join(changed)})" if changed else None


def check_failed_share(store_path: Path, frame, max_failed_share: float) -> None:
    """Fail the stage when more than ``max_failed_share`` of the stored records are failed notes."""
    ids = set(frame["task_id"])
    records = [r for r in read_records(store_path) if str(r["task_id"]) in ids]
    failed = [r for r in records if is_failed(r)]
    if records and len(failed) / len(records) > max_failed_share:
        reasons = Counter(str(r.get("finish_reason")) for r in failed)
        raise ModelError(
            f"{len(failed)} of {len(records)} notes in {store_path} failed "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}; first: "
            f"{failed[0]['task_id']}: {failed[0].get('error')}), more than max_failed_share="
            f"{max_failed_share}: check the model or endpoint and run again (failed tasks are "
            f"retried)")


def _run_local(backend: Backend, frame, pending, fingerprints: dict[str, str],
               store: GenerationStore, already: int, batch_size: int, decoding: Decoding,
               default_stop: bool, progress: bool, tqdm, retries: int) -> GenerationReport:
    validate_tasks(pending, backend.prompt_form)
    decoding = completion_stop(decoding, backend.prompt_form, default_stop)
    prompts = [backend.prepare(row) for row in pending.to_dict("records")]
    lengths = {p.task_id: backend.prompt_length(p) for p in prompts}
    # Length buckets: similar lengths share a batch (little padding); longest first, so an
    # out-of-memory split happens early and its size is kept for the rest.
    prompts.sort(key=lambda p: (-lengths[p.task_id], p.task_id))
    report = new_report(Path(store.path), backend.name, backend.spec, backend.prompt_form, frame,
                        already, batch_size, "local")
    reasons: Counter[str] = Counter()
    fatal: str | None = None
    bar = tqdm(total=len(prompts), desc=f"generating ({backend.name})", unit="note",
               disable=not progress)
    _ = backend.model if isinstance(backend, TransformersBackend) else None  # load before timing
    report.load_seconds = getattr(backend, "load_seconds", 0.0)
    start = time.perf_counter()
    try:
        for first in range(0, len(prompts), batch_size):
            chunk = prompts[first:first + batch_size]
            records, fatal, _ = batch_records(backend, chunk, fingerprints, decoding, retries)
            account(report, reasons, records, store)
            bar.update(len(chunk))
            if fatal:
                break
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        report.finish_reasons = dict(reasons)
        report.batch_size_used = backend.working_batch_size or batch_size
        report.pending_left = len(frame) - len(store.done.intersection(frame["task_id"]))
        report.notes_per_server = dict(getattr(backend, "notes_per_server", {}))
    if fatal:
        raise ModelError(fatal)
    return report


def stage_metrics(report: GenerationReport, store_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Key numbers of the stage for its record: notes in the store, this run's counts and speed."""
    records = read_records(store_path)
    reasons = Counter(r.get("finish_reason") for r in records)
    failed = sum(1 for r in records if is_failed(r))
    return {"notes": len(records) - failed, "failed_notes": failed,
            "generated_this_run": report.generated,
            "already_done": report.already_done, "failed": report.failed,
            "pending_left": report.pending_left, "engine": report.engine,
            "notes_per_server": dict(report.notes_per_server),
            "tokens_per_s": round(report.tokens_per_s, 3),
            "notes_per_min": round(report.notes_per_min, 3),
            "completion_tokens_this_run": report.completion_tokens,
            "seconds": round(report.seconds, 3), "load_seconds": round(report.load_seconds, 3),
            "batch_size_used": report.batch_size_used, "prompt_form": report.prompt_form,
            "finish_reasons": {key: reasons.get(key, 0) for key in
                               ("stop", "length", "empty", "error")},
            "empty_share": round(reasons.get("empty", 0) / len(records), 4) if records else 0.0}


__all__ = ["ENGINES", "GenerationReport", "check_failed_share", "generate_store",
           "load_task_table", "set_aside_store", "stage_config", "stage_metrics", "store_conflict",
           "validate_tasks"]
