"""``medsyn bench NAME``: speed benchmarks that print a ratio measured in one run."""

from __future__ import annotations

import argparse
import importlib

from medsyn_utils.bench import BENCHMARKS
from medsyn_utils.cli.output import print_result


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"medsyn_utils.bench.{args.benchmark}")
    print_result(module.run(args), args.json)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks (print a ratio)")
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, text in BENCHMARKS.items():
        module = importlib.import_module(f"medsyn_utils.bench.{name}")
        bench = sub.add_parser(name, help=text)
        bench.add_argument("--json", action="store_true", help="print one JSON object")
        for flags, options in module.OPTIONS:
            bench.add_argument(*flags, **options)
        bench.set_defaults(func=_run)
