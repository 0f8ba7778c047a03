"""``medsyn bench generation``: batched generation against one note at a time.

The original MedSyn scripts generated one note per ``generate`` call. This benchmark times that
against the kit's batched backend on the same tasks and model, with the same output length
(``min_new_tokens = max_new_tokens``, greedy), in one run, and prints the ratio of tokens/s.

``--gpu-sweep`` instead times a 7B-shaped Llama with random weights (bf16, CUDA) at batch sizes
1/16/64/256 and compares decode speed with the memory-bandwidth bound (every decode step reads
all weights and the KV cache once).
"""

from __future__ import annotations

import time
from typing import Any

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.generate.models import DEFAULT_MODEL, resolve_model
from medsyn_utils.testing.tiny import SENTENCES

# Peak memory bandwidth (GB/s) by GPU name, for the bound; pass --bandwidth-gbs for others.
GPU_BANDWIDTH_GBS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100 PCIe": 2000.0, "H100": 3350.0,
                     "A100-SXM4-80GB": 2039.0, "A100-SXM4-40GB": 1555.0, "A100": 1555.0,
                     "L40S": 864.0, "L4": 300.0, "A10G": 600.0, "RTX 4090": 1008.0}


# The sweep's model: Llama-2-7B sizes (random weights, so no download).
SWEEP_SHAPE = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
               "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
               "max_position_embeddings": 4096}


# Options of `medsyn bench generation` (flags, argparse keywords); cli/bench.py adds them.
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--model",), dict(default=DEFAULT_MODEL, help="model to time (a tiny model folder runs in seconds)")),
    (("--tasks",), dict(type=int, default=16, help="notes generated in each mode")),
    (("--batch-size",), dict(type=int, default=16, help="batch size of the batched mode")),
    (("--max-new-tokens",), dict(type=int, default=128, help="tokens per note, forced (a short note; published notes are longer)")),
    (("--device",), dict(default="auto", help="auto | cpu | cuda")),
    (("--dtype",), dict(default="auto", help="auto | float32 | bfloat16 | float16")),
    (("--threads",), dict(type=int, default=0, help="torch CPU threads (0 = torch's default)")),
    (("--gpu-sweep",), dict(action="store_true", help="time a 7B-shaped random model on CUDA at several batch sizes instead")),
    (("--sweep-batches",), dict(default="1,16,64,256", help="batch sizes of the GPU sweep")),
    (("--sweep-prompt-tokens",), dict(type=int, default=128, help="prompt length of the GPU sweep")),
    (("--sweep-new-tokens",), dict(type=int, default=128, help="new tokens per row in the GPU sweep")),
    (("--bandwidth-gbs",), dict(type=float, default=0.0, help="GPU memory bandwidth for the bound (0 = from the GPU name)")),
)

# Allowed values of the numeric options (keywords of core.checks.check_number), checked by
# `medsyn bench` before anything loads.
RANGES: dict[str, dict[str, Any]] = {
    "tasks": dict(low=1, high=100_000, integer=True),
    "batch_size": dict(low=1, high=100_000, integer=True),
    "max_new_tokens": dict(low=1, high=1_000_000, integer=True),
    "threads": dict(low=0, high=4096, integer=True),
    "sweep_prompt_tokens": dict(low=1, high=1_000_000, integer=True),
    "sweep_new_tokens": dict(low=1, high=1_000_000, integer=True),
    "bandwidth_gbs": dict(low=0, high=1e6),
}


def bench_prompts(n: int) -> list[str]:
    """``n`` Russian completion prompts of varied length (a note, then the start of another)."""
    prompts = []
    for i in range(n):
        body = " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(1 + i % 3))
        prompts.append(f"Запись приёма: {body}\n\nЗапись приёма: Жалобы на")
    return prompts


def run(args: Any) -> dict[str, Any]:
    """Time sequential against batched generation; return the figures."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gpu_sweep:
        return gpu_sweep(args)
    from medsyn_utils.generate.backends.base import Decoding, Prompt
    from medsyn_utils.generate.backends.transformers import TransformersBackend

    if args.tasks < 1 or args.batch_size < 1 or args.max_new_tokens < 1:
        raise ParameterError("--tasks, --batch-size and --max-new-tokens must be >= 1")
    backend = TransformersBackend(resolve_model(args.model), device=args.device, dtype=args.dtype,
                                  prompt_form="completion")
    prompts = [Prompt(f"b{i:04d}", text=text, echoes=(text,))
               for i, text in enumerate(bench_prompts(args.tasks))]
    tokens = args.max_new_tokens
    decoding = Decoding(max_new_tokens=tokens, min_new_tokens=tokens, temperature=0.0)
    backend.generate_batch(prompts[:1], Decoding(max_new_tokens=2, temperature=0.0))  # warm-up

    start = time.perf_counter()
    for prompt in prompts:  # the original scripts: one note per generate call
        backend.generate_batch([prompt], decoding)
    sequential = time.perf_counter() - start

    lengths = {p.task_id: backend.prompt_length(p) for p in prompts}
    ordered = sorted(prompts, key=lambda p: -lengths[p.task_id])  # length buckets, as the stage
    start = time.perf_counter()
    for first in range(0, len(ordered), args.batch_size):
        backend.generate(ordered[first:first + args.batch_size], decoding)
    batched = time.perf_counter() - start

    total = tokens * len(prompts)
    model = backend.model
    return {
        "batched_tokens_per_s": round(total / batched, 3),
        "sequential_tokens_per_s": round(total / sequential, 3),
        "ratio": round(sequential / batched, 3),
        "batch_size": args.batch_size,
        "tasks": len(prompts),
        "max_new_tokens": tokens,
        "model": backend.spec.model_id,
        "device": str(model.device),
        "dtype": str(model.dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "sequential_seconds": round(sequential, 3),
        "batched_seconds": round(batched, 3),
    }


def gpu_sweep(args: Any, *, shape: dict[str, int] | None = None,
              device: str = "cuda") -> dict[str, Any]:
    """Decode speed of a 7B-shaped Llama (random bf16 weights) against the bandwidth bound.

    ``shape`` (LlamaConfig sizes) and ``device`` let ``medsyn bench gpu --dry-run`` run the same
    sweep with a tiny model on CPU (``args.bandwidth_gbs`` then gives the bound). Long because
    building the model, timing each batch and its bound are one measurement.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("--gpu-sweep needs a CUDA GPU and none is visible: run it on a GPU "
                             "machine, or drop --gpu-sweep for the CPU benchmark")
    try:
        batches = [int(x) for x in str(args.sweep_batches).split(",") if x.strip()]
    except ValueError:
        raise ParameterError(f"--sweep-batches {args.sweep_batches!r}: use integers separated "
                             f"by commas, e.g. 1,16,64,256") from None
    name = torch.cuda.get_device_name(0) if device == "cuda" else device
    bandwidth = args.bandwidth_gbs or next(
        (value for key, value in GPU_BANDWIDTH_GBS.items() if key in name), 0.0)
    if not bandwidth:
        raise ParameterError(f"no known bandwidth for GPU {name!r}: pass --bandwidth-gbs")
    config = LlamaConfig(**(shape or SWEEP_SHAPE), bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    head_dim = config.hidden_size // config.num_attention_heads
    kv_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 2
    prompt_len, new = args.sweep_prompt_tokens, args.sweep_new_tokens
    gen = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(batch: int, tokens: int) -> float:
        ids = torch.randint(3, config.vocab_size, (batch, prompt_len), device=device, generator=gen)
        mask = torch.ones_like(ids)
        sync()
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens,
                           min_new_tokens=tokens, do_sample=False, pad_token_id=0)
        sync()
        return time.perf_counter() - start

    rows = []
    timed(1, 4)  # warm-up (kernels, allocator)
    for batch in batches:
        try:
            prefill = timed(batch, 1)
            total = timed(batch, new)
        except torch.OutOfMemoryError:
            if device == "cuda":
                torch.cuda.empty_cache()
            rows.append({"batch_size": batch, "error": "out of memory"})
            continue
        decode = max(total - prefill, 1e-9)
        decode_tps = batch * (new - 1) / decode
        mean_context = prompt_len + new / 2
        step_bytes = weight_bytes + kv_per_token * batch * mean_context
        bound_tps = batch * bandwidth * 1e9 / step_bytes
        rows.append({"batch_size": batch, "tokens_per_s": round(batch * new / total, 1),
                     "decode_tokens_per_s": round(decode_tps, 1),
                     "bound_tokens_per_s": round(bound_tps, 1),
                     "fraction_of_bound": round(decode_tps / bound_tps, 3),
                     "seconds": round(total, 3)})
    shaped = "7B-shaped" if shape is None else f"{weight_bytes / 2e9:.3g}B-parameter"
    return {"gpu": name, "model": f"{shaped} Llama, random weights, bfloat16",
            "weight_gb": round(weight_bytes / 1e9, 2), "bandwidth_gbs": bandwidth,
            "prompt_tokens": prompt_len, "new_tokens": new, "rows": rows}
