"""``medsyn bench scaling``: the Ray engine with 1 and with 2 actors on the same tasks.

Starts a local Ray (loopback), writes the same tasks into two fresh stores, once with one model
replica and once with two (greedy, forced length, so both write the same number of tokens), and
prints tokens/s of each and their ratio, measured in one run. On a 2-core machine two replicas
share the same cores, so the ratio says what this machine gives, not what a cluster would.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.generate.models import DEFAULT_MODEL
from medsyn_utils.testing.tiny import SENTENCES


# Options of `medsyn bench scaling` (flags, argparse keywords); cli/bench.py adds them.
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--model",), dict(default=DEFAULT_MODEL, help="model every actor loads (a tiny model folder runs in seconds)")),
    (("--tasks",), dict(type=int, default=16, help="notes written in each setting")),
    (("--batch-size",), dict(type=int, default=4, help="rows per actor call")),
    (("--max-new-tokens",), dict(type=int, default=32, help="tokens per note, forced")),
    (("--ray-address",), dict(default="", help="a running cluster (empty: local Ray)")),
)

# Allowed values of the numeric options (keywords of core.checks.check_number), checked by
# `medsyn bench` before anything loads.
RANGES: dict[str, dict[str, Any]] = {
    "tasks": dict(low=2, high=100_000, integer=True),
    "batch_size": dict(low=1, high=100_000, integer=True),
    "max_new_tokens": dict(low=1, high=1_000_000, integer=True),
}


def bench_tasks(n: int):
    """``n`` tasks with both prompt forms, of varied length."""
    import pandas as pd

    rows = []
    for i in range(n):
        text = " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(1 + i % 3))
        rows.append({"task_id": f"s{i:04d}", "user_prompt": f"Жалобы: {text}",
                     "completion_prompt": f"Запись приёма: {text}\n\nЗапись приёма: Жалобы на"})
    return pd.DataFrame(rows)


def run(args: Any) -> dict[str, Any]:
    """Time 1 against 2 actors; return both figures and the ratio."""
    from medsyn_utils.core import ray_cluster
    from medsyn_utils.generate.stage import generate_store

    if args.tasks < 2 or args.batch_size < 1 or args.max_new_tokens < 1:
        raise ParameterError("--tasks must be >= 2, --batch-size and --max-new-tokens >= 1")
    ray = ray_cluster.require_ray()
    started = ray_cluster.start_ray(args.ray_address)
    tasks = bench_tasks(args.tasks)
    figures: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="medsyn-scaling-") as folder:
            for actors in (1, 2):
                report = generate_store(
                    tasks, Path(folder) / f"actors{actors}.jsonl", model=args.model,
                    engine="ray", ray_address=args.ray_address, actors=actors,
                    batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                    min_new_tokens=args.max_new_tokens, temperature=0.0, progress=False,
                    max_failed_share=1.0)
                figures[actors] = report
        cpus = float(ray.cluster_resources().get("CPU", 0))
    finally:
        if started:
            ray.shutdown()
    one, two = figures[1], figures[2]
    return {
        "one_actor_tokens_per_s": round(one.tokens_per_s, 3),
        "two_actors_tokens_per_s": round(two.tokens_per_s, 3),
        "ratio": round(two.tokens_per_s / one.tokens_per_s, 3) if one.tokens_per_s else 0.0,
        "one_actor_seconds": round(one.seconds, 3),
        "two_actors_seconds": round(two.seconds, 3),
        "tasks": args.tasks, "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "model": one.model_id, "cluster_cpus": cpus,
        "note": "seconds include each actor loading the model once",
    }
