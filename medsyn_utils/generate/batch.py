"""One batch of tasks through a backend, as store records: used by the local loop and by the
Ray actors alike, so both engines write the same records.

A completion that is not a note (empty, ``null``, not text, an error) is asked again where that
can change the answer (sampling), a bounded number of times, and otherwise recorded as failed:
``finish_reason`` ``empty`` or ``error`` with the reason in ``error``. Failed tasks are not
"done": the next run retries them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from medsyn_utils.core.provenance import now_iso
from medsyn_utils.core.schema import STORE_FIELDS
from medsyn_utils.generate.backends.base import Backend, Completion, Decoding, Prompt
from medsyn_utils.generate.store import FAILED_REASONS


def make_record(backend: Backend, prompt: Prompt, completion: Completion, decoding: Decoding,
                fingerprint: str) -> dict[str, Any]:
    """The store record of one completion (a note, or a failed one with its reason)."""
    spec = backend.spec
    failed = completion.failed
    text = completion.text if isinstance(completion.text, str) else ""
    reason = completion.finish_reason if completion.finish_reason in FAILED_REASONS else "empty"
    if failed and completion.error and reason != "empty":
        reason = "error"
    record = {
        "task_id": prompt.task_id, "task_fingerprint": fingerprint,
        "model_id": spec.model_id, "model_revision": spec.revision,
        "adapter": spec.adapter, "backend": backend.name,
        "decoding": decoding.record(backend.prompt_form, completion.batch_size),
        "prompt": prompt.sent, "response": "" if failed else text,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "finish_reason": reason if failed else completion.finish_reason,
        "error": (completion.error or "the model wrote no text") if failed else None,
        "seconds": round(completion.seconds, 4), "created_at": now_iso(),
    }
    return {name: record[name] for name in STORE_FIELDS}


def generate_with_retries(backend: Backend, prompts: list[Prompt], decoding: Decoding,
                          retries: int = 2) -> list[Completion]:
    """Completions in the order of ``prompts``; failed ones asked again up to ``retries`` times
    where the backend says that can help (sampling). Fatal errors are not retried."""
    results = backend.generate(prompts, decoding)
    if not backend.retries_help(decoding):
        return results
    for attempt in range(1, retries + 1):
        again = [i for i, c in enumerate(results) if c.failed and not c.fatal]
        if not again:
            break
        # Another seed per attempt, so a sampled retry is a fresh draw (and still reproducible).
        redo = backend.generate([prompts[i] for i in again],
                               replace(decoding, seed=decoding.seed + 7919 * attempt))
        for i, completion in zip(again, redo):
            if not completion.failed:
                results[i] = completion
    return results


def batch_records(backend: Backend, prompts: list[Prompt], fingerprints: Mapping[str, str],
                  decoding: Decoding, retries: int = 2
                  ) -> tuple[list[dict[str, Any]], str | None, list[Completion]]:
    """Generate one batch of prompts into store records (``fingerprints``: task id → its task's).

    Returns ``(records, fatal, completions)``: ``fatal`` is the first error that must stop the
    run (a refused request); tasks it hit are left out of ``records`` so a re-run retries them.
    """
    completions = generate_with_retries(backend, prompts, decoding, retries)
    records, fatal = [], None
    for prompt, completion in zip(prompts, completions):
        if completion.fatal or completion.error == "skipped after a fatal error":
            fatal = fatal or (completion.error if completion.fatal else None)
            continue
        records.append(make_record(backend, prompt, completion, decoding,
                                   fingerprints[prompt.task_id]))
    return records, fatal, completions
