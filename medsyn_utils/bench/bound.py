"""What this machine can do for a model: its own linear layers timed alone, in the same run.

A benchmark's rate means little without the ceiling next to it. The ceiling here is the model's
matrix products by themselves — every ``nn.Linear`` of the model, with its own weights (so a
weight streamed from memory at decode time is streamed here too), applied to an input of the
model's width and a batch's rows, in the model's precision — timed on the machine at hand. An
encoder's attention products (scores and weighted values, ``4 · hidden · rows · length²`` per
layer) are matrix work too: :func:`attention_flops` counts them, at the linear layers' rate, so the
bound is the pass's whole matrix work done at the machine's matrix speed. What is left (softmax,
norms, activations, copies, Python) is what the ``fraction_of_bound`` leaves to gain. The best of
``repeats`` timings is kept: the machine's capability, not its contention at that moment.
"""

from __future__ import annotations

import time
from typing import Any


def linear_modules(model: Any, *, skip: tuple[str, ...] = ("pooler",)) -> list[Any]:
    """The model's ``nn.Linear`` layers (a tied output layer once), in module order."""
    import torch

    seen, found = set(), []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(s in name for s in skip):
            if id(module.weight) not in seen:
                seen.add(id(module.weight))
                found.append(module)
    return found


def linear_seconds(modules: list[Any], rows: int, *, repeats: int = 3, dtype: Any = None) -> float:
    """Best time of one pass of ``rows`` rows through every module's matrix product."""
    import torch

    weights = [m.weight if dtype is None else m.weight.to(dtype) for m in modules]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1], dtype=w.dtype, device=w.device)
              for w in weights}
    best = float("inf")
    with torch.inference_mode():
        for w in weights:  # warm-up: kernels (oneDNN builds one per shape), allocator, caches
            torch.nn.functional.linear(inputs[w.shape[1]], w)
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            for w in weights:
                torch.nn.functional.linear(inputs[w.shape[1]], w)
            if weights and weights[0].device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best


def linear_flops(modules: list[Any], rows: int) -> float:
    return float(sum(2 * rows * m.weight.shape[0] * m.weight.shape[1] for m in modules))


def attention_flops(model: Any, cells: int) -> float:
    """Matrix work of self-attention over ``cells`` = sum of rows x length² of the batches run.

    Each layer computes Q·Kᵀ and softmax·V, ``2 · hidden`` multiply-adds per cell each; layers
    and width come from the model's query projections (BERT / XLM-R naming; 0 if it has none).
    """
    import torch

    queries = [m for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name.split(".")[-1] == "query"]
    return float(sum(4 * m.weight.shape[0] for m in queries) * cells)


def fraction(measured: float, bound: float) -> float | None:
    return round(measured / bound, 3) if bound > 0 else None


def describe_machine() -> dict[str, Any]:
    """CPU model, cores, torch threads and the bf16-relevant flags (for the README's table)."""
    import torch

    from medsyn_utils.core.hardware import cpu_bf16_supported, cpu_description

    return {**cpu_description(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "bf16_native": cpu_bf16_supported()}
