"""``medsyn bench NAME``: speed benchmarks that print a ratio measured in one run."""

from __future__ import annotations

import argparse
import importlib

from medsyn_utils.bench import BENCHMARKS
from medsyn_utils.cli.output import print_result
from medsyn_utils.core.checks import check_number


def check_options(module, args: argparse.Namespace) -> None:
    """Every numeric option within its declared range (``RANGES``), before the benchmark loads
    anything; an option declared with ``type=int/float`` but no range is refused here too."""
    ranges = getattr(module, "RANGES", {})
    for flags, options in module.OPTIONS:
        dest = options.get("dest") or flags[0].lstrip("-").replace("-", "_")
        value = getattr(args, dest, None)
        if options.get("type") not in (int, float) or value is None:
            continue
        check_number(f"bench {args.benchmark} {flags[0]}", value,
                     **{"integer": options["type"] is int, **ranges.get(dest, {})})


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"medsyn_utils.bench.{args.benchmark}")
    check_options(module, args)
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
