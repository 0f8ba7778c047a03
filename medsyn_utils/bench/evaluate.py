"""``medsyn bench evaluate``: notes per second of the faithfulness part of the evaluation stage.

Real RuMedTop3 train complaints stand in for generated notes, each asked for symptoms of another
visit of its code (so some are found, some not), unrequested graph findings included.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.core.corpus import load_markup, load_rumedtop3
from medsyn_utils.evaluate.faithfulness import SymptomMatcher
from medsyn_utils.evaluate.stage import CHUNK

OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--notes",), dict(type=int, default=600, help="notes to evaluate")),
    (("--seed",), dict(type=int, default=0, help="seed of the note sample")),
)


def run(args) -> dict[str, Any]:
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
            "mean_coverage": round(float(np.mean(covered)), 3)}
