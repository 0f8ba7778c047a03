"""``medsyn bench NAME``: speed benchmarks that print a ratio measured in one run.

Each benchmark lives in its own module ``medsyn_utils.bench.<name>`` with
``run(args) -> dict`` and ``add_arguments(parser)``; timings never go into tests.
"""

from __future__ import annotations

import argparse
import importlib
import json

BENCHMARKS = {
    "sampling": "vectorised task sampler against a one-task-at-a-time loop",
    "generation": "batched generation against one note at a time",
    "scoring": "single-pass BERTScore against two bert_score.score calls",
}


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"medsyn_utils.bench.{args.benchmark}")
    result = module.run(args)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks (print a ratio)")
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, text in BENCHMARKS.items():
        try:
            module = importlib.import_module(f"medsyn_utils.bench.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"medsyn_utils.bench.{name}":
                continue
            raise
        bench = sub.add_parser(name, help=text)
        bench.add_argument("--json", action="store_true", help="print one JSON object")
        module.add_arguments(bench)
        bench.set_defaults(func=_run)
