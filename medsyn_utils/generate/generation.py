"""Stage 03 (generation) in one import: the names notebooks and other stages use.

The code lives by job: :mod:`.backends` (transformers, openai, vllm), :mod:`.batch` (one batch
into store records), :mod:`.stage` (the stage: resume, fingerprints, report), :mod:`.ray_engine`
(the same stage on a Ray cluster), :mod:`.store` (the resumable JSONL store),
:mod:`.preview` (notes beside prompts) and :mod:`.serve` (an OpenAI-compatible server).
"""

from __future__ import annotations

from medsyn_utils.generate.backends import BACKENDS, Backend, OpenAIBackend, TransformersBackend, \
    VLLMBackend, make_backend
from medsyn_utils.generate.backends.base import (DEFAULT_COMPLETION_STOP, Completion, Decoding,
                                                 Prompt, choose_prompt_form, cut_at_stop, finish,
                                                 render_chat, strip_echo)
from medsyn_utils.generate.preview import preview
from medsyn_utils.generate.stage import (ENGINES, GenerationReport, generate_store,
                                         load_task_table, stage_metrics, task_table_for_run,
                                         validate_tasks)

__all__ = [
    "BACKENDS", "DEFAULT_COMPLETION_STOP", "ENGINES", "Backend", "Completion", "Decoding",
    "GenerationReport", "OpenAIBackend", "Prompt", "TransformersBackend", "VLLMBackend",
    "choose_prompt_form", "cut_at_stop", "finish", "generate_store", "load_task_table",
    "make_backend", "preview", "render_chat", "stage_metrics", "strip_echo",
    "task_table_for_run", "validate_tasks",
]
