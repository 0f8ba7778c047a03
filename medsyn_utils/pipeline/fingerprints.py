"""Fingerprints of stage executions: what a stage's result depends on, and which run made it."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from medsyn_utils.core.data import file_sha256  # cached by path, size and mtime
from medsyn_utils.pipeline.stages import RUNNER_SET

__all__ = ["file_sha256", "output_fingerprint", "stage_fingerprint"]


def _hash_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stage_fingerprint(notebook_sha256: str, parameters: Mapping[str, Any],
                      inputs: Mapping[str, str | None]) -> str:
    """Hash of what a stage's result depends on: notebook, parameters (not run_dir), inputs."""
    params = {k: v for k, v in parameters.items() if k not in RUNNER_SET}
    return _hash_json({"notebook": notebook_sha256, "parameters": params, "inputs": dict(inputs)})


def output_fingerprint(fingerprint: str, ended_at: str | None) -> str:
    """Identity of one execution's outputs: a re-execution (even forced) changes it."""
    return _hash_json({"fingerprint": fingerprint, "ended_at": ended_at})

