"""The bound's parts: the model's own linear layers (a tied output layer once) and their work."""

from __future__ import annotations

import torch

from medsyn_utils.bench.bound import fraction, linear_flops, linear_modules, linear_seconds


def test_linear_modules_count_a_tied_weight_once_and_skip_the_pooler() -> None:
    body = torch.nn.Linear(8, 16)
    head = torch.nn.Linear(16, 8)
    tied = torch.nn.Linear(16, 8)
    tied.weight = head.weight
    model = torch.nn.ModuleDict({"body": body, "head": head, "tied": tied,
                                 "pooler": torch.nn.Linear(8, 8)})
    assert linear_modules(model) == [body, head]
    assert linear_flops([body, head], rows=3) == 2 * 3 * (16 * 8 + 8 * 16)


def test_linear_seconds_times_each_precision() -> None:
    modules = [torch.nn.Linear(32, 64), torch.nn.Linear(64, 32)]
    for dtype in (None, torch.bfloat16):
        seconds = linear_seconds(modules, 16, repeats=2, dtype=dtype)
        assert 0 < seconds < 10
    assert fraction(1.0, 4.0) == 0.25 and fraction(1.0, 0.0) is None
