"""``medsyn bench evaluate``: notes per second of each part of the evaluation stage: faithfulness,
then the corpus parts (embed, realism, diversity, privacy, fairness) on ``--corpus-notes`` notes.

Real RuMedTop3 train complaints stand in for generated notes, each asked for symptoms of another
visit of its code (so some are found, some not), unrequested graph findings included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.core.checks import SEED_MAX
from medsyn_utils.core.corpus import load_markup, load_rumedtop3
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.evaluate.config import EvaluationConfig
from medsyn_utils.evaluate.corpus import REFERENCE_MAX, corpus_summary, real_reference
from medsyn_utils.evaluate.faithfulness import SymptomMatcher
from medsyn_utils.evaluate.stage import CHUNK
from medsyn_utils.evaluate.vectors import KINDS as VECTOR_KINDS, HashedVectors

OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--notes",), dict(type=int, default=600, help="notes to evaluate")),
    (("--seed",), dict(type=int, default=0, help="seed of the note sample")),
    (("--corpus-notes",), dict(type=int, default=600,
                               help="notes for the corpus parts (0 skips them; the issue's goal "
                                    "is 2400 in 10 min)")),
    (("--corpus-embed",), dict(default=EvaluationConfig.defaults()["corpus_embed"],
                               choices=VECTOR_KINDS,
                               help="text vectors of the corpus parts: the kit's e5 encoder "
                                    "through the embedding cache (MEDSYN_CACHE_DIR; the stage's "
                                    "default) or hashed 3-grams")),
    (("--corpus-reference-max",), dict(type=int, default=EvaluationConfig.defaults()["corpus_reference_max"],
                                       help="real notes per set (train, held-out), a seeded "
                                            "sample; 0 takes all (the stage's corpus_reference_max)")),
)
RANGES = {"notes": dict(low=1, integer=True), "seed": dict(low=0, high=SEED_MAX, integer=True),
          "corpus_notes": dict(low=0, integer=True), "corpus_reference_max": dict(low=0, integer=True)}


def run(args) -> dict[str, Any]:
    # the stage's own rule, before any model loads
    problems = EvaluationConfig.problems({"corpus_reference_max": args.corpus_reference_max})
    if problems:
        raise ParameterError(f"--corpus-reference-max {args.corpus_reference_max}: {problems[0]}")
    rng = np.random.default_rng(args.seed)
    visits = load_rumedtop3("train")
    markup = load_markup().dropna(subset=["symptom"])
    names = markup.groupby("idx")["symptom"].apply(list)
    codes = dict(zip(visits["idx"], visits["code"]))
    by_code = pd.Series([names.get(i, []) for i in visits["idx"]], index=visits["idx"]) \
        .groupby(visits.set_index("idx")["code"]).sum()
    rows = visits.iloc[rng.choice(len(visits), size=min(args.notes, len(visits)), replace=False)]
    matcher = SymptomMatcher()
    matcher.match("прогрев", ["кашель"])  # the graph index and pymorphy3 load outside the timing
    started = time.perf_counter()
    asked = []
    for idx in rows["idx"]:
        pool = list(dict.fromkeys(by_code.get(codes[idx], []))) or ["кашель"]
        asked.append([str(s) for s in rng.choice(pool, size=min(4, len(pool)), replace=False)])
    covered = []
    texts = list(rows["text"])
    for start in range(0, len(texts), CHUNK):  # as the stage calls it
        covered += [m.coverage for m in matcher.match_many(texts[start:start + CHUNK],
                                                          asked[start:start + CHUNK])]
    seconds = time.perf_counter() - started
    rate = len(rows) / seconds
    return {"notes": int(len(rows)), "seconds": round(seconds, 2), "notes_per_second": round(rate, 1),
            "minutes_for_2400_notes": round(2400 / rate / 60, 2), "goal_minutes": 5.0,
            "ratio_goal_over_measured": round(5.0 / (2400 / rate / 60), 2),
            "mean_coverage": round(float(np.mean(covered)), 3),
            "corpus": _corpus_parts(args)}


def _corpus_parts(args) -> dict[str, Any] | None:
    """Seconds and notes/s of each corpus part, as the stage calls them (``None``: skipped)."""
    if not args.corpus_notes:
        return None
    from medsyn_utils.evaluate.vectors import vectors_for

    result = bench_corpus(args.corpus_notes, args.seed, embed=vectors_for(args.corpus_embed),
                          reference_max=args.corpus_reference_max)
    result["embed"] = args.corpus_embed
    result["minutes_for_2400_notes"] = round(2400 / result["notes_per_s"] / 60, 2)
    result["ratio_goal_over_measured"] = round(10.0 / result["minutes_for_2400_notes"], 2)
    return result


def bench_notes(n_notes: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A benchmark corpus: ``n_notes`` real train notes standing in for generated ones (4 models ×
    3 priors, random sex and age, a same-code style example), the rest of train and dev as real."""
    if n_notes < 2:
        raise ParameterError(f"n_notes {n_notes} must be at least 2")
    train, heldout = real_reference("full")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train), size=n_notes, replace=n_notes > len(train))
    chosen = train.iloc[pick].reset_index(drop=True)
    by_code = train.groupby("code").indices
    example = [int(rng.choice(by_code[c])) for c in chosen["code"]]
    notes = pd.DataFrame({
        "idx": [f"bench-{i}" for i in range(n_notes)], "response": chosen["text"],
        "generation_model": [f"model-{i % 4}" for i in range(n_notes)],
        "prior": [("symptoms+example", "symptoms", "code")[(i // 4) % 3] for i in range(n_notes)],
        "category": chosen["code"], "anamnesis": train["text"].to_numpy(object)[example],
        "example_visit_id": train["idx"].to_numpy(object)[example],
        "sex": rng.choice(["male", "female"], n_notes), "age": rng.integers(9, 90, n_notes),
    })
    return notes, train, heldout


def bench_corpus(n_notes: int, seed: int, embed: Callable[[list[str]], np.ndarray] | None = None,
                 reference_max: int = REFERENCE_MAX) -> dict:
    """Time ``evaluate.corpus.corpus_summary`` on ``n_notes`` benchmark notes: wall and CPU
    seconds and notes/s per part (embed, realism, diversity, privacy, fairness), the reference
    sizes and the vectors' record
    (with the encoder: how many texts came from the embedding cache, how many were embedded).
    Without ``embed``, hashed character 3-grams stand in for the encoder; ``reference_max`` as in
    ``corpus_summary``."""
    notes, train, heldout = bench_notes(n_notes, seed)
    start, cpu = time.perf_counter(), time.process_time()
    result = corpus_summary(notes, train, heldout, embed=embed or HashedVectors(), out_dir=None,
                            seed=seed, reference_max=reference_max)
    total, total_cpu = time.perf_counter() - start, time.process_time() - cpu
    parts = {name: {"seconds": s, "cpu_seconds": result["cpu_seconds"][name],
                    "notes_per_s": n_notes / s if s > 0 else None}
             for name, s in result["seconds"].items()}
    return {"n_notes": n_notes, "groups": len(result["groups"]), "seconds": total,
            "cpu_seconds": round(total_cpu, 3),
            "notes_per_s": n_notes / total, "parts": parts, "reference": result["reference"],
            "vectors": result["vectors"]}
