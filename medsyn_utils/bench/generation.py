"""``medsyn bench generation``: batched generation against one note at a time.

The original MedSyn scripts generated one note per ``generate`` call. This benchmark times that
against the kit's batched backend on the same tasks and model, with the same output length
(``min_new_tokens = max_new_tokens``, greedy), in one run, and prints the ratio of tokens/s.

On a CPU with native bf16 (AVX512-BF16/AMX) the batched mode is also run with the model in the
other of float32/bfloat16 on the same prompts: tokens/s of both, the speed-up and the share of
greedy notes identical to fp32's (``--compare-bf16 off`` skips it), and both sets of notes scored
alike by the scorer in fp32 (``--judge-encoder``: ``anamnesis_precision`` against the record each
prompt starts with, and words per note), so a speed-up is not bought with worse notes. Each batched rate stands
beside its bound (:mod:`medsyn_utils.bench.bound`): the model's own linear layers timed alone in
its dtype at the batch's shapes — prefill over the padded prompt, then one row per note and
decode step — ``bound_<dtype>_tokens_per_s`` and ``fraction_of_bound``.

``--gpu-sweep`` instead times a 7B-shaped Llama with random weights (bf16, CUDA) at batch sizes
1/16/64/256 and compares decode speed with the memory-bandwidth bound (every decode step reads
all weights and the KV cache once).
"""

from __future__ import annotations

import time
from typing import Any

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.generate.models import DEFAULT_MODEL, resolve_model
from medsyn_utils.score.encoders import EMBEDDED_E5
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
    (("--dtype",), dict(default="auto", help="auto (bf16 on CUDA and on a CPU with AVX512-BF16/AMX, else float32) | float32 | bfloat16 | float16")),
    (("--threads",), dict(type=int, default=0, help="torch CPU threads (0 = torch's default)")),
    (("--skip-sequential",), dict(action="store_true", help="time only the batched mode(s)")),
    (("--compare-bf16",), dict(default="auto", choices=("auto", "on", "off"), help="also run batched in bf16 and fp32 and compare (auto: on a CPU with AVX512-BF16/AMX)")),
    (("--judge-encoder",), dict(default=EMBEDDED_E5, help="encoder that scores the fp32 and bf16 notes against their prompt's record (fp32 BERTScore F; '' skips it)")),
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


def bench_record(i: int) -> str:
    """The ``i``-th prompt's record: one to three sentences of the tiny corpus."""
    return " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(1 + i % 3))


def bench_prompts(n: int) -> list[str]:
    """``n`` Russian completion prompts of varied length (a note, then the start of another)."""
    return [f"Запись приёма: {bench_record(i)}\n\nЗапись приёма: Жалобы на" for i in range(n)]


def run(args: Any) -> dict[str, Any]:
    """Time sequential against batched generation (and bf16 against fp32); return the figures."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.gpu_sweep:
        return gpu_sweep(args)
    from medsyn_utils.bench.bound import describe_machine
    from medsyn_utils.generate.backends.base import Decoding, Prompt
    from medsyn_utils.generate.backends.transformers import TransformersBackend

    if args.tasks < 1 or args.batch_size < 1 or args.max_new_tokens < 1:
        raise ParameterError("--tasks, --batch-size and --max-new-tokens must be >= 1")
    if args.judge_encoder and args.compare_bf16 != "off":
        from medsyn_utils.score.encoders import resolve_encoder
        resolve_encoder(args.judge_encoder)  # a wrong --judge-encoder fails before generating
    backend = TransformersBackend(resolve_model(args.model), device=args.device, dtype=args.dtype,
                                  prompt_form="completion")
    prompts = [Prompt(f"b{i:04d}", text=text, echoes=(text,))
               for i, text in enumerate(bench_prompts(args.tasks))]
    tokens = args.max_new_tokens
    decoding = Decoding(max_new_tokens=tokens, min_new_tokens=tokens, temperature=0.0)
    backend.generate_batch(prompts[:1], Decoding(max_new_tokens=2, temperature=0.0))  # warm-up
    total = tokens * len(prompts)
    result: dict[str, Any] = {"batch_size": args.batch_size, "tasks": len(prompts),
                              "max_new_tokens": tokens, "model": backend.spec.model_id,
                              "device": str(backend.model.device),
                              "dtype": str(backend.model.dtype).replace("torch.", ""),
                              "threads": torch.get_num_threads(), "machine": describe_machine()}
    if not args.skip_sequential:
        start = time.perf_counter()
        for prompt in prompts:  # the original scripts: one note per generate call
            backend.generate_batch([prompt], decoding)
        sequential = time.perf_counter() - start
        result.update(sequential_tokens_per_s=round(total / sequential, 3),
                      sequential_seconds=round(sequential, 3))
    batched, texts = _batched(backend, prompts, decoding, args.batch_size)
    result.update(batched_tokens_per_s=round(total / batched, 3), batched_seconds=round(batched, 3))
    if not args.skip_sequential:
        result["ratio"] = round(sequential / batched, 3)  # unrounded seconds: tiny runs too
    result.update(_bound(backend, prompts, args.batch_size, tokens, total / batched, result["dtype"]))
    if _compare_bf16(args.compare_bf16, result["device"]):
        name = {"float32": "fp32", "bfloat16": "bf16"}.get(result["dtype"], result["dtype"])
        result[f"{name}_fraction_of_bound"] = result["fraction_of_bound"]
        result.update(_bf16_against_fp32(backend, prompts, decoding, args.batch_size, texts,
                                         total / batched, args.judge_encoder))
    return result


def _batched(backend: Any, prompts: list, decoding: Any, batch_size: int) -> tuple[float, dict[str, str]]:
    """Seconds of the batched mode (length buckets, as the stage) and the notes it wrote."""
    lengths = {p.task_id: backend.prompt_length(p) for p in prompts}
    ordered = sorted(prompts, key=lambda p: -lengths[p.task_id])
    texts: dict[str, str] = {}
    start = time.perf_counter()
    for first in range(0, len(ordered), batch_size):
        chunk = ordered[first:first + batch_size]
        for prompt, done in zip(chunk, backend.generate(chunk, decoding)):
            texts[prompt.task_id] = done.text
    return time.perf_counter() - start, texts


def _bound(backend: Any, prompts: list, batch_size: int, tokens: int, rate: float,
           dtype: str) -> dict[str, Any]:
    """Tokens/s the model's linear layers alone allow at the batched mode's shapes, in its dtype."""
    from medsyn_utils.bench.bound import fraction, linear_modules, linear_seconds

    model = backend.model
    modules = linear_modules(model)
    head = model.get_output_embeddings()
    body = [m for m in modules if m is not head]
    lengths = sorted((backend.prompt_length(p) for p in prompts), reverse=True)
    step: dict[int, float] = {}
    seconds = 0.0
    for first in range(0, len(lengths), batch_size):
        rows = len(lengths[first:first + batch_size])
        width = lengths[first]
        if rows not in step:
            step[rows] = linear_seconds(modules, rows)
        # prefill: the body over the padded prompt, the output layer on the last position only
        seconds += linear_seconds(body, rows * width, repeats=2) + tokens * step[rows]
    bound = tokens * len(lengths) / seconds
    name = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
    return {f"bound_{name}_tokens_per_s": round(bound, 3), "fraction_of_bound": fraction(rate, bound)}


def _compare_bf16(option: str, device: str) -> bool:
    from medsyn_utils.core.hardware import cpu_bf16_supported

    if option == "off":
        return False
    return option == "on" or (device == "cpu" and cpu_bf16_supported())


def _bf16_against_fp32(backend: Any, prompts: list, decoding: Any, batch_size: int,
                       texts: dict[str, str], rate: float, judge_encoder: str = "") -> dict[str, Any]:
    """The batched mode again with the model in the other of fp32/bf16: speed, same notes and,
    with ``judge_encoder``, how close each set's notes stay to their prompt's record."""
    import torch

    from medsyn_utils.generate.backends.transformers import TransformersBackend

    first = backend.model.dtype
    other_dtype = "float32" if first == torch.bfloat16 else "bfloat16"
    other = TransformersBackend(backend.spec, device=str(backend.model.device), dtype=other_dtype,
                                prompt_form="completion", tokenizer=backend.tokenizer)
    other.generate_batch(prompts[:1], type(decoding)(max_new_tokens=2, temperature=0.0))
    seconds, other_texts = _batched(other, prompts, decoding, batch_size)
    other_rate = decoding.max_new_tokens * len(prompts) / seconds
    fp32_texts, bf16_texts = (other_texts, texts) if other_dtype == "float32" else (texts, other_texts)
    fp32_rate, bf16_rate = (other_rate, rate) if other_dtype == "float32" else (rate, other_rate)
    out = _bound(other, prompts, batch_size, decoding.max_new_tokens, other_rate, other_dtype)
    names = {"float32": "fp32", "bfloat16": "bf16"}
    out[f"{names[other_dtype]}_fraction_of_bound"] = out.pop("fraction_of_bound")
    same = [fp32_texts[k] == bf16_texts[k] for k in fp32_texts]
    prefix = [_common_prefix(fp32_texts[k], bf16_texts[k]) / max(1, len(fp32_texts[k]))
              for k in fp32_texts]
    return {**out, "other_dtype": other_dtype,
            "fp32_batched_tokens_per_s": round(fp32_rate, 3),
            "bf16_batched_tokens_per_s": round(bf16_rate, 3),
            "bf16_speedup": round(bf16_rate / fp32_rate, 3),
            "bf16_identical_notes": round(sum(same) / len(same), 4),
            "bf16_mean_shared_prefix": round(sum(prefix) / len(prefix), 4),
            **(_judge(judge_encoder, prompts, fp32_texts, bf16_texts) if judge_encoder else {})}


def _judge(encoder: str, prompts: list, fp32_texts: dict[str, str],
           bf16_texts: dict[str, str]) -> dict[str, Any]:
    """Both sets scored alike, so a speed-up is not bought with worse notes: the scorer's
    ``anamnesis_precision`` (fp32) of each note against the record its prompt starts with, as a
    style example, and the mean words per note."""
    import numpy as np

    from medsyn_utils.score.embeddings import scoring_layer
    from medsyn_utils.score.scorer import NoteScorer

    scorer = NoteScorer(encoder, scoring_layer(encoder), precision="fp32", device="cpu")
    records = [bench_record(i) for i in range(len(prompts))]  # prompts[i] starts with it
    out: dict[str, Any] = {"judge_encoder": scorer.info.name, "judge_layer": scorer.layer}
    for name, texts in (("fp32", fp32_texts), ("bf16", bf16_texts)):
        notes = [texts[p.task_id] for p in prompts]
        scores = scorer.score(notes, [None] * len(notes), records, progress=False)
        out[f"{name}_notes_anamnesis_precision"] = round(float(np.nanmean(scores["anamnesis_precision"])), 4)
        out[f"{name}_notes_mean_words"] = round(float(np.mean([len(n.split()) for n in notes])), 2)
    return out


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
