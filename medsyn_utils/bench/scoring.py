"""``medsyn bench scoring``: the one-pass scorer against two bert-score calls, on full-length notes.

Candidates are real RuMedTop3 *train* full notes of generated-note length (at least ``--min-words``
words, median about 140), references their own RuMedPrime mark-up symptoms (recall) and another
real note of the same code (precision). Loading is timed apart from throughput on both sides:

* baseline, the original MedSyn filter: ``bert_score.score(notes, symptoms)`` then
  ``bert_score.score(notes, examples)``; throughput is timed with one loaded
  ``bert_score.BERTScorer`` called twice (each call embeds every note again), loading as the two
  model loads the two ``score`` calls made;
* :class:`~medsyn_utils.score.scorer.NoteScorer` (fp32): loaded once, every distinct text embedded
  once, batches cut by a token budget;
* the same scorer in a reduced precision (``--cpu-precision``: ``bf16`` by default on a CPU with
  AVX512-BF16/AMX, else ``int8``, dynamic quantization of the linear layers), its speed-up over fp32, its largest score difference and its filter agreement (share of notes with
  the same pass/fail decision) at the thresholds the default calibration would use (the fp32
  scores' 10th percentile) and at the harder median.

Throughput is the median of ``--repeats`` runs with its spread (min, max); one unit: pairs/s
(a pair = one note with both scores). ``--device cuda`` runs the same with ``--cuda-precision``
(fp16/bf16) in place of int8 and a larger token budget.

The bound (:mod:`medsyn_utils.bench.bound`): the encoder's own linear layers timed alone on this
machine in fp32 and in the reduced precision give its matrix speed (GFLOP/s); the pass's matrix
work per pair (linear layers over the padded tokens plus the attention products over the batches
actually run) at that speed gives ``bound_fp32_pairs_per_s`` and ``fraction_of_bound`` (fp32), and
``bound_<precision>_pairs_per_s`` with ``quantized_fraction_of_bound`` (bf16/fp16 only).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from medsyn_utils.core.checks import SEED_MAX
from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5


# Options of `medsyn bench scoring` (flags, argparse keywords); cli/bench.py adds them.
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--encoder",), dict(default=EMBEDDED_E5, help="encoder id or folder (default: embedded e5)")),
    (("--layer",), dict(type=int, default=DEFAULT_LAYER, help="encoder layer (default 9)")),
    (("--n",), dict(type=int, default=300, help="notes to score (default 300)")),
    (("--min-words",), dict(type=int, default=80, help="shortest candidate note in words (default 80: generated-note length)")),
    (("--batch-size",), dict(type=int, default=64, help="texts per forward pass, both sides")),
    (("--max-batch-tokens",), dict(type=int, default=None, help="one-pass scorer's padded tokens per forward pass (default: by device)")),
    (("--repeats",), dict(type=int, default=3, help="timed repetitions; the median is kept")),
    (("--seed",), dict(type=int, default=0, help="which real notes are drawn")),
    (("--device",), dict(default="cpu", help="cpu (default) or cuda")),
    (("--cuda-precision",), dict(default="bf16", choices=("fp16", "bf16"), help="the reduced precision measured on CUDA (int8 is the CPU one)")),
    (("--cpu-precision",), dict(default="auto", choices=("auto", "bf16", "int8", "int8-attention"), help="the reduced precision measured on CPU: auto = bf16 where the CPU has it, else int8 (all linear layers); int8-attention: only "
                             "the attention projections")),
    (("--bound-rows",), dict(type=int, default=2048, help="rows of the timed linear layers for the bound (default 2048)")),
    (("--skip-baseline",), dict(action="store_true", help="time only the one-pass scorer")),
)

# Allowed values of the numeric options (keywords of core.checks.check_number), checked by
# `medsyn bench` before anything loads.
RANGES: dict[str, dict[str, Any]] = {
    "layer": dict(low=1, high=1000, integer=True),
    "n": dict(low=1, high=10_000_000, integer=True),
    "min_words": dict(low=0, high=100_000, integer=True),
    "batch_size": dict(low=1, high=100_000, integer=True),
    "max_batch_tokens": dict(low=1, high=100_000_000, integer=True),
    "repeats": dict(low=1, high=1000, integer=True),
    "seed": dict(low=0, high=SEED_MAX, integer=True),
}


def benchmark_pairs(n: int, seed: int, min_words: int):
    """Full-length train notes with their mark-up symptoms and another note of the same code."""
    from medsyn_utils.core.corpus import load_full_notes, load_markup
    from medsyn_utils.core.errors import ParameterError

    markup = load_markup()
    markup = markup[(markup["split"] == "train") & markup["symptom"].notna()]
    symptoms = markup.groupby("idx")["symptom"].agg(lambda s: ", ".join(dict.fromkeys(s.str.strip())))
    notes = load_full_notes("train").sort_values("idx").reset_index(drop=True)
    words = notes["full_text"].str.split().str.len()
    pool = notes[notes["idx"].isin(symptoms.index) & (words >= min_words)]
    if len(pool) < n:
        raise ParameterError(f"only {len(pool)} train notes have mark-up and >= {min_words} words: "
                             f"lower --n or --min-words")
    rng = np.random.default_rng(seed)
    picked = pool.iloc[np.sort(rng.choice(len(pool), size=n, replace=False))]
    examples = []
    for idx, code in zip(picked["idx"], picked["code"]):
        same = notes[(notes["code"] == code) & (notes["idx"] != idx)]
        examples.append(same["full_text"].iloc[int(rng.integers(len(same)))] if len(same) else "")
    return (picked["full_text"].tolist(), picked["idx"].map(symptoms).tolist(), examples)


def _timed(function: Callable[[], Any], device: str) -> tuple[float, Any]:
    import torch

    start = time.perf_counter()
    value = function()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, value


def _spread(seconds: list[float], n: int) -> dict[str, float]:
    rates = [n / s for s in seconds]
    return {"median": round(statistics.median(rates), 3), "min": round(min(rates), 3),
            "max": round(max(rates), 3)}


def _agreement(fast: np.ndarray, exact: np.ndarray, quantile: float) -> float:
    """Share of notes whose pass/fail decision is the same under both sets of scores."""
    from medsyn_utils.score.filter import passed_filter

    recall_t = float(np.nanpercentile(exact[:, 0], quantile))
    precision_t = float(np.nanpercentile(exact[:, 1], quantile))
    same = passed_filter(fast[:, 0], fast[:, 1], recall_t, precision_t) == \
        passed_filter(exact[:, 0], exact[:, 1], recall_t, precision_t)
    return round(float(same.mean()), 4)


def run(args: Any) -> dict[str, Any]:
    """Time both sides and the reduced precision; over 60 lines: one timing loop whose order of
    measurements (interleaved repeats on a shared machine) is the point."""
    import torch

    from medsyn_utils.score.encoders import resolve_encoder
    from medsyn_utils.score.scorer import NoteScorer

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        from medsyn_utils.core.errors import ParameterError
        raise ParameterError("--device cuda but torch sees no GPU here: run it on a GPU machine")
    fast_precision = args.cuda_precision if device.startswith("cuda") else args.cpu_precision
    if fast_precision == "auto":
        from medsyn_utils.core.hardware import cpu_bf16_supported
        fast_precision = "bf16" if cpu_bf16_supported() else "int8"
    info = resolve_encoder(args.encoder)  # converts the embedded e5 once, untimed
    notes, symptoms, examples = benchmark_pairs(args.n, args.seed, args.min_words)
    n, repeats = len(notes), max(1, args.repeats)
    options = {"batch_size": args.batch_size, "device": device, "max_batch_tokens": args.max_batch_tokens}
    load_one, scorer = _timed(lambda: NoteScorer(args.encoder, args.layer, **options), device)
    load_fast, fast = _timed(lambda: NoteScorer(args.encoder, args.layer, precision=fast_precision,
                                                **options), device)

    def one_pass(which: NoteScorer) -> np.ndarray:
        frame = which.score(notes, symptoms, examples, progress=False)
        return frame[["symptoms_recall", "anamnesis_precision"]].to_numpy()

    result: dict[str, Any] = {"pairs": n, "encoder": info.name, "layer": args.layer, "device": device,
                              "repeats": repeats, "median_note_words": float(np.median(
                                  [len(t.split()) for t in notes]))}
    times: dict[str, list[float]] = {"one": [], "fast": [], "two": []}
    values: dict[str, Any] = {}
    if not args.skip_baseline:
        import bert_score

        load_two, baseline = _timed(lambda: bert_score.BERTScorer(
            model_type=info.path, num_layers=args.layer, batch_size=args.batch_size, device=device),
            device)

        def two_calls() -> np.ndarray:
            _, recall, _ = baseline.score(notes, symptoms, batch_size=args.batch_size)
            precision, _, _ = baseline.score(notes, examples, batch_size=args.batch_size)
            return np.stack([recall.numpy(), precision.numpy()], axis=1)

        result["two_call_load_seconds"] = round(2 * load_two, 3)  # the original loads twice
    for _ in range(repeats):
        if not args.skip_baseline:
            seconds, values["two"] = _timed(two_calls, device)
            times["two"].append(seconds)
        for key, which in (("one", scorer), ("fast", fast)):
            seconds, values[key] = _timed(lambda which=which: one_pass(which), device)
            times[key].append(seconds)
    one, fast_rate = _spread(times["one"], n), _spread(times["fast"], n)
    result.update({
        "single_pass_pairs_per_s": one["median"], "single_pass_spread": one,
        "single_pass_load_seconds": round(load_one, 3),
        "quantized_precision": fast_precision,
        "quantized_pairs_per_s": fast_rate["median"], "quantized_spread": fast_rate,
        "quantized_load_seconds": round(load_fast, 3),
        "quantized_speedup": round(fast_rate["median"] / one["median"], 3),
        "quantized_filter_agreement": _agreement(values["fast"], values["one"], 10.0),
        "quantized_filter_agreement_at_median": _agreement(values["fast"], values["one"], 50.0),
        "quantized_max_abs_difference": float(np.nanmax(np.abs(values["fast"] - values["one"]))),
        "tokens_embedded_per_pass": scorer.last_report.tokens_embedded,
        "padded_tokens_per_pass": scorer.last_report.padded_tokens,
    })
    result.update(bounds(scorer, fast_precision, n, args.bound_rows, one["median"], fast_rate["median"]))
    if not args.skip_baseline:
        two = _spread(times["two"], n)
        result.update({"two_call_pairs_per_s": two["median"], "two_call_spread": two,
                       "ratio": round(one["median"] / two["median"], 3),
                       "max_abs_difference": float(np.nanmax(np.abs(values["one"] - values["two"])))})
    return result


def bounds(scorer: Any, fast_precision: str, n: int, rows: int, fp32_rate: float,
           fast_rate: float) -> dict[str, Any]:
    """Pairs/s this machine's matrix speed allows for the pass's matrix work, and the shares."""
    import torch

    from medsyn_utils.bench.bound import (attention_flops, describe_machine, fraction, linear_flops,
                                          linear_modules, linear_seconds)

    modules = linear_modules(scorer.model)
    report = scorer.last_report
    rows = max(1, min(rows, scorer.max_batch_tokens))
    linear_work = linear_flops(modules, report.padded_tokens)
    attention_work = attention_flops(scorer.model, report.attention_cells)
    flops_per_pair = (linear_work + attention_work) / n
    out: dict[str, Any] = {"machine": describe_machine(), "bound_rows": rows,
                           "padded_tokens_per_pair": round(report.padded_tokens / n, 1),
                           "gflop_per_pair": round(flops_per_pair / 1e9, 3),
                           "attention_share_of_flops": round(attention_work / (linear_work + attention_work), 3)
                           if linear_work + attention_work else None}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    for name, rate, key in (("fp32", fp32_rate, "fraction_of_bound"),
                            (fast_precision, fast_rate, "quantized_fraction_of_bound")):
        if name not in dtypes:
            out[key] = None  # int8's kernels are not plain matrix products: no bound measured
            continue
        flop_per_s = linear_flops(modules, rows) / linear_seconds(modules, rows, dtype=dtypes[name])
        bound = flop_per_s / flops_per_pair
        out[f"bound_{name}_pairs_per_s"] = round(bound, 3)
        out[f"linear_{name}_gflop_per_s"] = round(flop_per_s / 1e9, 1)
        out[key] = fraction(rate, bound)
    return out
