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


def test_attention_work_counts_each_layer_scores_and_values(tiny_encoder_dir) -> None:
    """4 · hidden per cell per layer: Q·Kᵀ and softmax·V, 2 · hidden multiply-adds each."""
    from transformers import AutoConfig, AutoModel

    from medsyn_utils.bench.bound import attention_flops

    config = AutoConfig.from_pretrained(tiny_encoder_dir)
    model = AutoModel.from_pretrained(tiny_encoder_dir)
    cells = 3 * 7 * 7
    assert attention_flops(model, cells) == 4 * config.hidden_size * config.num_hidden_layers * cells
    assert attention_flops(torch.nn.Linear(4, 4), cells) == 0.0


def test_the_scorer_reports_the_attention_work_it_ran(tiny_encoder_dir) -> None:
    """attention_cells = Σ rows · longest² over the forward batches (batch of one: length²)."""
    from medsyn_utils.score.scorer import NoteScorer

    scorer = NoteScorer(str(tiny_encoder_dir), 2, batch_size=1)
    scorer.score(["боль в горле и кашель"], ["кашель"], ["насморк"], progress=False)
    report = scorer.last_report
    lengths = [len(ids) for ids in scorer.token_ids(["боль в горле и кашель", "кашель", "насморк"])]
    assert report.attention_cells == sum(length ** 2 for length in lengths)
    assert report.padded_tokens == sum(lengths)
