"""``medsyn bench scoring``: the one-pass scorer against two ``bert_score.score`` calls.

The same real notes (RuMedTop3 train full notes as candidates; their mark-up symptoms and another
real note of the same code as references), the same encoder and layer, scored twice:

* the original MedSyn filter: ``bert_score.score(notes, symptoms)`` for recall, then
  ``bert_score.score(notes, examples)`` for precision — each call loads the model and embeds
  every note;
* :class:`medsyn_utils.scoring.NoteScorer`: loaded once, every distinct text embedded once.

Both timings include loading the encoder (as each ran in the original filter); the encoder folder
is resolved (and, for the embedded e5, converted) before timing, and the files are read once
untimed so that both start from a warm page cache. A "pair" is one note with both scores.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5


# Options of `medsyn bench scoring` (flags, argparse keywords); cli/bench.py adds them.
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--encoder",), dict(default=EMBEDDED_E5, help="encoder id or folder (default: embedded e5)")),
    (("--layer",), dict(type=int, default=DEFAULT_LAYER, help="encoder layer (default 9)")),
    (("--n",), dict(type=int, default=64, help="real notes to score (default 64)")),
    (("--batch-size",), dict(type=int, default=64, help="texts per forward pass, both sides")),
    (("--max-batch-tokens",), dict(type=int, default=None, help="one-pass scorer's padded tokens per forward pass (default: its own)")),
    (("--repeats",), dict(type=int, default=1, help="timed repetitions; the best is kept")),
    (("--seed",), dict(type=int, default=0, help="which real notes are drawn")),
)


def run(args: Any) -> dict[str, Any]:
    import bert_score
    import torch

    from medsyn_utils.score.encoders import resolve_encoder
    from medsyn_utils.score.scoring import NoteScorer, calibration_pairs

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    info = resolve_encoder(args.encoder)  # converts the embedded e5 once, untimed
    pairs = calibration_pairs(args.n, args.seed)
    pairs = pairs[pairs["other_note"].notna()]
    notes, symptoms = pairs["note"].tolist(), pairs["symptoms"].tolist()
    examples = pairs["other_note"].tolist()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    budget = {"max_batch_tokens": args.max_batch_tokens} if args.max_batch_tokens else {}
    NoteScorer(args.encoder, args.layer, batch_size=args.batch_size)  # warm the page cache, untimed

    def single() -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        scorer = NoteScorer(args.encoder, args.layer, batch_size=args.batch_size, device=device,
                            **budget)
        frame = scorer.score(notes, symptoms, examples, progress=False)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, frame[["symptoms_recall", "anamnesis_precision"]].to_numpy()

    def two_calls() -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        _, recall, _ = bert_score.score(notes, symptoms, model_type=info.path, num_layers=args.layer,
                                        batch_size=args.batch_size, device=device)
        precision, _, _ = bert_score.score(notes, examples, model_type=info.path,
                                           num_layers=args.layer, batch_size=args.batch_size,
                                           device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, np.stack([recall.numpy(), precision.numpy()], axis=1)

    best_single, best_two = float("inf"), float("inf")
    for _ in range(max(1, args.repeats)):
        t_two, values_two = two_calls()
        t_single, values_single = single()
        best_two, best_single = min(best_two, t_two), min(best_single, t_single)
    n = len(notes)
    return {
        "single_pass_pairs_per_s": round(n / best_single, 3),
        "two_call_pairs_per_s": round(n / best_two, 3),
        "ratio": round(best_two / best_single, 3),
        "pairs": n,
        "encoder": info.name,
        "layer": args.layer,
        "device": device,
        "single_pass_seconds": round(best_single, 3),
        "two_call_seconds": round(best_two, 3),
        "max_abs_difference": float(np.nanmax(np.abs(values_single - values_two))),
    }
