"""``medsyn bench gpu``: every GPU figure of the kit in one call, inside a short GPU lease.

Four parts, all on random-weight models (nothing to download), then the environment:

1. ``decode_sweep``: the 7B-shaped sweep of ``medsyn bench generation --gpu-sweep`` (bf16, batch
   1/16/64/256), tokens/s and the fraction of the memory-bandwidth bound;
2. ``generation``: ``generate_store`` with a 1B-shaped model (TinyLlama-1.1B sizes) through the
   transformers backend, decoding and batch size as ``params/gpu.yaml``, length buckets, and one
   injected out-of-memory error on a too-large first batch; notes/s and tokens/s;
3. ``scoring``: the one-pass ``NoteScorer`` with an encoder of ``bert-base-multilingual-cased``
   shape, fp32 and fp16, 2,000 pairs of full-length texts, against two ``bert_score.score`` calls;
4. ``lora``: the fine-tuning stage's trainer on the 1B-shaped model, seconds per optimizer step;
5. GPU, driver, torch/transformers versions and each part's peak GPU memory.

Each part starts only while its time allowance is left of the budget, runs under a hard limit
(SIGALRM) and is recorded as done, timed out (figures so far kept), failed or skipped, with the
reason. ``gpu.json`` and ``gpu.md`` are rewritten after every part, so a run killed from outside
still leaves what it measured. ``--dry-run`` runs the same code on CPU with tiny shapes in seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

from medsyn_utils.bench import gpu_parts
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.core.paths import resolve
from medsyn_utils.core.provenance import now_iso, package_versions, to_json, write_atomic

ONE_B = {"vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632,  # TinyLlama-1.1B
         "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
         "max_position_embeddings": 2048}
MBERT = {"vocab_size": 119547, "hidden_size": 768, "intermediate_size": 3072,  # mBERT-base cased
         "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 512}
TINY_LM = {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}
TINY_ENCODER = {"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 3, "num_attention_heads": 4, "max_position_embeddings": 128}

# Sizes per mode. Generation takes its decoding and batch size from params/gpu.yaml (a run's),
# except where "run_overrides" says otherwise (the dry run's tiny batch).
SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "cuda": {
        "decode_sweep": {"model": None, "batches": "1,16,64,256", "prompt_tokens": 128,
                         "new_tokens": 128, "bandwidth_gbs": 0.0},
        "generation": {"model": ONE_B, "dtype": "bfloat16", "batches": 2, "prompt_tokens": 400,
                       "run_overrides": {}},
        "scoring": {"encoder": MBERT, "layer": 9, "pairs": 2000, "text_tokens": 500},
        "lora": {"model": ONE_B, "dtype": "bfloat16", "steps": 3, "batch_size": 8,
                 "grad_accumulation": 32, "max_length": 512},
    },
    "cpu": {
        "decode_sweep": {"model": TINY_LM, "batches": "1,2", "prompt_tokens": 8, "new_tokens": 8,
                         "bandwidth_gbs": 50.0},
        "generation": {"model": TINY_LM, "dtype": "float32", "batches": 3, "prompt_tokens": 60,
                       "run_overrides": {"batch_size": 2, "max_new_tokens": 6}},
        "scoring": {"encoder": TINY_ENCODER, "layer": 2, "pairs": 12, "text_tokens": 100},
        "lora": {"model": TINY_LM, "dtype": "float32", "steps": 1, "batch_size": 2,
                 "grad_accumulation": 1, "max_length": 192},
    },
}
# Seconds each part may run on the GPU (the sum stays inside the default budget).
PARTS: dict[str, tuple[Callable[..., None], float]] = {
    "decode_sweep": (gpu_parts.decode_sweep, 100.0),
    "generation": (gpu_parts.generation, 110.0),
    "scoring": (gpu_parts.scoring, 110.0),
    "lora": (gpu_parts.lora, 90.0),
}
DEFAULT_BUDGET_S = 420.0  # leaves about a minute of the 8 for imports, wheels and start-up
# Figures each part reports (always present in gpu.json; null when the part did not get there).
FIGURES = {
    "decode_sweep": ("gpu", "model", "weight_gb", "bandwidth_gbs", "prompt_tokens", "new_tokens",
                     "rows"),
    "generation": ("model", "tasks", "notes", "batch_size_asked", "batch_size_used",
                   "injected_ooms", "max_new_tokens", "prompt_tokens", "completion_tokens",
                   "notes_per_s", "tokens_per_s", "seconds", "load_seconds", "temperature",
                   "top_p", "repetition_penalty"),
    "scoring": ("pairs", "layer", "encoder", "mean_note_tokens", "two_call_seconds",
                "two_call_pairs_per_s", *(f"{p}_{key}" for p in ("fp32", "fp16") for key in
                                          ("seconds", "pairs_per_s", "speedup",
                                           "max_abs_difference"))),
    "lora": ("model", "rank", "steps", "batch_size", "grad_accumulation", "max_length",
             "warmup_seconds", "seconds_per_step", "sequences_per_s", "trainable_parameters"),
}
ENVIRONMENT_PACKAGES = ("torch", "transformers", "tokenizers", "peft", "accelerate", "bert-score")


# Options of `medsyn bench gpu` (flags, argparse keywords); cli/bench.py adds them.
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--dry-run",), dict(action="store_true", help="every part on CPU with tiny shapes, in seconds (no GPU needed)")),
    (("--out",), dict(default="outputs/bench-gpu", help="folder for gpu.json and gpu.md (default outputs/bench-gpu)")),
    (("--budget-s",), dict(type=float, default=DEFAULT_BUDGET_S, help=f"seconds for all parts; a part whose allowance is no longer left "
                             f"is skipped (default {DEFAULT_BUDGET_S:.0f})")),
    (("--bandwidth-gbs",), dict(type=float, default=0.0, help="GPU memory bandwidth for the decode bound (0 = from the GPU name)")),
)

# Allowed values of the numeric options (keywords of core.checks.check_number), checked by
# `medsyn bench` before anything loads.
RANGES: dict[str, dict[str, Any]] = {
    "budget_s": dict(low=0, low_open=True, high=86_400),
    "bandwidth_gbs": dict(low=0, high=1e6),
}


class PartTimeout(BaseException):
    """A part ran past its limit (a BaseException, so the kit's ``except Exception`` lets it by)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`PartTimeout` after ``seconds`` (main thread only; elsewhere no limit).

    An alarm set before (pytest-timeout's, say) is put back afterwards, less the time spent.
    """
    def stop(signum, frame):
        raise PartTimeout

    try:
        previous = signal.signal(signal.SIGALRM, stop)
    except ValueError:  # not the main thread
        yield
        return
    start = time.monotonic()
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay:
            left = max(old_delay - (time.monotonic() - start), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


def run_part(name: str, part: Callable[..., None], shape: Mapping[str, Any], device: str,
             work: Path, limit: float) -> dict[str, Any]:
    """Run one part under ``limit`` seconds; never raises (a failure is recorded with its reason)."""
    import gc

    import torch

    figures: dict[str, Any] = {}
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    status, reason = "done", None
    start = time.perf_counter()
    try:
        with time_limit(limit):
            part(shape, device, work, figures)
    except PartTimeout:
        status, reason = "timed_out", f"stopped at its {limit:.0f} s limit; figures so far kept"
    except Exception as error:  # noqa: BLE001 - one part's failure must not lose the others
        traceback.print_exc(file=sys.stderr)
        lines = str(error).strip().splitlines()
        status, reason = "failed", f"{type(error).__name__}: {lines[0][:300] if lines else ''}"
    seconds = time.perf_counter() - start
    peak = round(torch.cuda.max_memory_allocated() / 1e9, 2) if device == "cuda" else None
    gc.collect()
    return {"status": status, "reason": reason, "limit_s": round(limit, 1),
            "seconds": round(seconds, 2), "peak_gpu_memory_gb": peak,
            "figures": {**dict.fromkeys(FIGURES[name]), **figures}}


def skipped(name: str, reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason, "limit_s": None, "seconds": None,
            "peak_gpu_memory_gb": None, "figures": dict.fromkeys(FIGURES[name])}


def nvidia_driver() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def environment(device: str) -> dict[str, Any]:
    import torch

    env = {"device": device, "gpu": None, "gpu_memory_gb": None, "driver": None,
           "cuda": torch.version.cuda, "cpu_count": os.cpu_count(),
           "versions": package_versions(ENVIRONMENT_PACKAGES)}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 1e9, 1),
                   driver=nvidia_driver())
    return env


def run_settings() -> dict[str, Any]:
    """Generation settings of a GPU run (``params/gpu.yaml``) that part 2 copies."""
    import yaml

    path = resolve("params/gpu.yaml")
    if not path.is_file():
        raise ParameterError(f"{path} is missing: run medsyn bench gpu from a checkout of the kit")
    section = yaml.safe_load(path.read_text(encoding="utf-8"))["generation"]
    keys = ("batch_size", "max_new_tokens", "temperature", "top_p", "repetition_penalty")
    return {key: section[key] for key in keys}


def shapes_for(mode: str, bandwidth_gbs: float) -> dict[str, dict[str, Any]]:
    shapes = {name: dict(shape) for name, shape in SHAPES[mode].items()}
    generation = shapes["generation"]
    generation["run"] = {**run_settings(), **generation.pop("run_overrides")}
    if bandwidth_gbs:
        shapes["decode_sweep"]["bandwidth_gbs"] = bandwidth_gbs
    return shapes


def run(args: Any) -> dict[str, Any]:
    """Run the parts within ``args.budget_s``; write gpu.json and gpu.md; return the figures."""
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("medsyn bench gpu needs a CUDA GPU and torch sees none: run it on a "
                             "GPU machine (benchmarks/gpu.sh), or pass --dry-run")
    if args.budget_s <= 0:
        raise ParameterError(f"--budget-s {args.budget_s}: give the seconds the parts may use")
    out = Path(args.out).expanduser().resolve()  # relative to the current directory
    shapes = shapes_for("cpu" if args.dry_run else "cuda", args.bandwidth_gbs)
    result: dict[str, Any] = {"benchmark": "gpu", "dry_run": bool(args.dry_run),
                              "started_at": now_iso(), "budget_s": args.budget_s, "seconds": None,
                              "environment": environment(device), "parts": {}}
    try:  # an unwritable --out fails now, not after the first part
        write_report(result, out)
    except OSError as error:
        raise ParameterError(f"--out {out} cannot be written ({error.strerror}): give a "
                             f"writable folder") from None
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr), \
            tempfile.TemporaryDirectory(prefix="medsyn-bench-gpu-") as work:
        for name, (part, allowance) in PARTS.items():
            left = args.budget_s - (time.perf_counter() - start)
            if left < allowance:
                result["parts"][name] = skipped(name, f"{left:.0f} s of the {args.budget_s:.0f} s "
                                                      f"budget left, this part is given "
                                                      f"{allowance:.0f} s")
            else:
                print(f"medsyn bench gpu: {name} (at most {allowance:.0f} s)", file=sys.stderr)
                result["parts"][name] = run_part(name, part, shapes[name], device, Path(work),
                                                 allowance)
            result["seconds"] = round(time.perf_counter() - start, 1)
            write_report(result, out)
    return result


def write_report(result: Mapping[str, Any], out: Path) -> None:
    write_atomic(out / "gpu.json", to_json(result))
    write_atomic(out / "gpu.md", markdown(result))


def _value(figures: Mapping[str, Any], template: str, *keys: str) -> str:
    values = [figures.get(key) for key in keys]
    return "—" if any(v is None for v in values) else template.format(*values)


def _rows(name: str, f: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(measure, value) rows of one part for the markdown table."""
    if name == "decode_sweep":
        return [(f"batch {row['batch_size']}: decode tokens/s (fraction of bound)",
                 _value(row, "{:,.0f} ({:.2f})", "decode_tokens_per_s", "fraction_of_bound")
                 if "error" not in row else row["error"]) for row in f.get("rows") or []] \
            or [("decode tokens/s (fraction of bound)", "—")]
    if name == "generation":
        return [("notes/s; tokens/s (batch asked → used)",
                 _value(f, "{:.2f}; {:,.0f} ({} → {})", "notes_per_s", "tokens_per_s",
                        "batch_size_asked", "batch_size_used"))]
    if name == "scoring":
        return [("two bert_score.score calls, pairs/s", _value(f, "{:,.1f}", "two_call_pairs_per_s"))] + [
            (f"one pass {p}, pairs/s (speed-up)",
             _value(f, "{:,.1f} ({:.2f}×)", f"{p}_pairs_per_s", f"{p}_speedup")) for p in ("fp32", "fp16")]
    return [("s/step (sequences/s)", _value(f, "{:.2f} ({:.1f})", "seconds_per_step", "sequences_per_s"))]


def markdown(result: Mapping[str, Any]) -> str:
    env = result["environment"]
    versions = env["versions"]
    where = ("DRY RUN on CPU with tiny shapes: these are not GPU figures" if result["dry_run"]
             else f"{env['gpu']} ({env['gpu_memory_gb']} GB), driver {env['driver']}, CUDA {env['cuda']}")
    title = (f"`medsyn bench gpu`, {result['started_at']}: {where}; torch {versions.get('torch')}, "
             f"transformers {versions.get('transformers')}, peft {versions.get('peft')}.")
    lines = [title, "", "| part | measure | value | peak GPU memory (GB) | seconds | status |",
             "|---|---|---:|---:|---:|---|"]
    for name, part in result["parts"].items():
        status = part["status"] + (f": {part['reason']}" if part["reason"] else "")
        for measure, value in _rows(name, part["figures"]):
            lines.append(f"| {name} | {measure} | {value} | {part['peak_gpu_memory_gb'] or '—'} | "
                         f"{part['seconds'] if part['seconds'] is not None else '—'} | "
                         f"{status.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
