"""Stage 03 on a Ray cluster: the pending tasks become a Ray Dataset, ``map_batches`` runs them
through ``actors`` model replicas (each loads the model once), and the finished records stream
back to the driver, which appends them to the same fsynced store as the local engine. Resume,
fingerprints, failed notes and the stage record are therefore unchanged; tasks already in the
store are never sent.

Ray is the optional extra ``cluster`` (``pip install -e '.[cluster]'``). With ``ray_address``
empty a local Ray is started on loopback (and stopped after the run); ``auto`` or ``HEAD:6379``
joins a running cluster. Actors of a whole CPU each starve Ray Data's read tasks on a small
machine (two 1-CPU actors on 2 cores never finish), so by default an actor takes a share of the
cluster's CPUs that leaves one free.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Iterator, Mapping

from medsyn_utils.core.errors import MedsynError, ModelError, ParameterError
from medsyn_utils.core.provenance import json_default
from medsyn_utils.core.ray_cluster import actor_cpus, require_ray, start_ray
from medsyn_utils.generate.backends.base import OPTIONAL_CHAT_COLUMN, PROMPT_COLUMNS

RAY_BACKENDS = ("transformers", "vllm")


class GenerationActor:
    """One model replica: built once per actor, then called with batches of task rows (JSON)."""

    def __init__(self, backend: str, build: Mapping[str, Any], decoding, retries: int,
                 threads: int = 0) -> None:
        self.decoding = decoding
        self.retries = retries
        self.error: str | None = None
        try:
            import torch

            if threads:
                torch.set_num_threads(threads)
            from medsyn_utils.generate.backends import make_backend
            from medsyn_utils.generate.backends.transformers import TransformersBackend

            self.engine = make_backend(backend, **build)
            if isinstance(self.engine, TransformersBackend):
                _ = self.engine.model  # load the weights now, once per actor
        except MedsynError as error:
            self.error = str(error)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[str]]:
        from medsyn_utils.generate.batch import batch_records

        rows = [json.loads(text) for text in batch["task"]]
        if self.error:
            return {"record": [""] * len(rows), "fatal": [self.error] * len(rows)}
        prompts = [self.engine.prepare(row) for row in rows]
        fingerprints = {str(r["task_id"]): str(r["task_fingerprint"]) for r in rows}
        records, fatal, _ = batch_records(self.engine, prompts, fingerprints, self.decoding,
                                          self.retries)
        out = [json.dumps(r, ensure_ascii=False, default=json_default) for r in records]
        return {"record": out + [""] * (len(rows) - len(out)),
                "fatal": [fatal or ""] * len(rows)}


def stream_records(rows: list[dict[str, Any]], backend: str, build: Mapping[str, Any], decoding,
                   retries: int, batch_size: int, actors: int, cpus: float,
                   gpus: float) -> Iterator[tuple[list[dict[str, Any]], str | None, int]]:
    """Run ``rows`` through the actors; yield ``(records, fatal, rows_done)`` as batches finish."""
    ray = require_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    items = [{"task": json.dumps(row, ensure_ascii=False, default=json_default)} for row in rows]
    blocks = max(1, -(-len(items) // batch_size))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    threads = max(1, int(cpus)) if not gpus else 0
    # Ray Data's actor pool restarts a dead replica and retries its batch by default
    # (max_restarts=-1, max_task_retries=-1).
    mapped = dataset.map_batches(
        GenerationActor, batch_size=batch_size, batch_format="numpy",
        concurrency=min(actors, blocks), num_cpus=cpus, num_gpus=gpus or None,
        fn_constructor_kwargs=dict(backend=backend, build=dict(build), decoding=decoding,
                                   retries=retries, threads=threads))
    for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
        texts = [str(t) for t in batch["record"]]
        fatal = next((str(f) for f in batch["fatal"] if str(f)), None)
        yield [json.loads(t) for t in texts if t], fatal, len(texts)


def resolve_form(backend: str, build: Mapping[str, Any]):
    """Check the backend and Ray on the driver; the model spec and the prompt form the actors use
    (read from the tokenizer, so the driver never loads the weights)."""
    from medsyn_utils.generate.backends.base import choose_prompt_form
    from medsyn_utils.generate.models import load_tokenizer, resolve_model

    if backend.strip().lower() not in RAY_BACKENDS:
        raise ParameterError(f"engine='ray' runs local models ({', '.join(RAY_BACKENDS)}), not "
                             f"backend={backend!r}: for several servers give backend='openai' "
                             f"several base_url addresses")
    require_ray()
    spec = resolve_model(str(build["model"]), revision=build.get("revision"),
                         adapter=build.get("adapter"))
    return spec, choose_prompt_form(build.get("prompt_form") or "auto", spec, load_tokenizer(spec))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def run(backend: str, build: dict[str, Any], frame, pending, fingerprints: dict[str, str], store,
        already: int, batch_size: int, decoding, progress: bool, retries: int, *,
        ray_address: str = "", actors: int = 1, gpus_per_actor: float = 0.0,
        cpus_per_actor: float = 0.0):
    """The Ray engine of :func:`medsyn_utils.generate.stage.generate_store` (same report).

    ``build`` holds the resolved model spec and prompt form (:func:`resolve_form`).
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from medsyn_utils.generate.report import account, new_report

    name = backend.strip().lower()
    if not isinstance(actors, int) or actors < 1:
        raise ParameterError(f"actors={actors!r}: use an integer >= 1")
    if gpus_per_actor < 0 or cpus_per_actor < 0:
        raise ParameterError("gpus_per_actor and cpus_per_actor must be >= 0")
    ray = require_ray()
    spec, form = build["model"], build["prompt_form"]
    # Only what a prompt is built from travels to the actors (the fingerprint is made here).
    sent = [c for c in ("task_id", *PROMPT_COLUMNS["chat"], OPTIONAL_CHAT_COLUMN,
                        *PROMPT_COLUMNS["completion"]) if c in pending.columns]
    rows = [{**{c: (None if _missing(row[c]) else str(row[c])) for c in sent},
             "task_fingerprint": fingerprints[str(row["task_id"])]}
            for row in pending.to_dict("records")]
    report = new_report(Path(store.path), name, spec, form, frame, already, batch_size, "ray")
    started = start_ray(ray_address)
    reasons: Counter[str] = Counter()
    fatal: str | None = None
    bar = tqdm(total=len(rows), desc=f"generating ({name} on Ray, {actors} actors)",
               unit="note", disable=not progress)
    start = time.perf_counter()
    try:
        cpus = actor_cpus(cpus_per_actor, actors, float(ray.cluster_resources().get("CPU", 1)))
        try:
            for records, problem, done in stream_records(rows, name, build, decoding, retries,
                                                         batch_size, actors, cpus,
                                                         gpus_per_actor):
                account(report, reasons, records, store)
                bar.update(done)
                if problem:
                    fatal = problem
                    break
        except MedsynError:
            raise
        except Exception as error:  # a Ray failure: one line, finished notes are kept
            lines = [line for line in str(error).splitlines() if line.strip()]
            raise ModelError(f"the Ray engine failed ({type(error).__name__}: "
                             f"{(lines[-1] if lines else '')[:200]}): finished notes are kept; "
                             f"run again to continue") from None
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        report.finish_reasons = dict(reasons)
        report.batch_size_used = batch_size
        report.pending_left = len(frame) - len(store.done.intersection(frame["task_id"]))
        if started:
            ray.shutdown()
    if fatal:
        raise ModelError(fatal)
    return report
