"""``medsyn kg``: the knowledge graph's counts and a code's symptoms."""

from __future__ import annotations

import argparse

from medsyn_utils.cli.output import print_result
from medsyn_utils.core.checks import check_number
from medsyn_utils.kg.graph import load_graph


def _stats(args: argparse.Namespace) -> int:
    kg = load_graph(rebuild=args.rebuild)
    print_result(kg.stats(), args.json)
    return 0


def _symptoms(args: argparse.Namespace) -> int:
    check_number("kg symptoms --top", args.top, low=1, integer=True)
    kg = load_graph()
    table = kg.symptoms(args.code, rollup=args.rollup)
    shown = f", the first {args.top} shown" if args.top < len(table) else ""
    print(f"{kg.resolve(args.code)} {kg.name(args.code)}: {len(table)} symptoms{shown}")
    print(table.head(args.top).to_string(index=False))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("kg", help="the medical knowledge graph")
    sub = parser.add_subparsers(dest="kg_command", metavar="ACTION", required=True)
    stats = sub.add_parser("stats", help="node/edge counts and RuMedTop3 coverage")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.add_argument("--rebuild", action="store_true", help="ignore the cache")
    stats.set_defaults(func=_stats)
    symptoms = sub.add_parser("symptoms", help="symptoms of a code with weights and sources")
    symptoms.add_argument("code", help="ICD-10 code, e.g. J06 or J06.9")
    symptoms.add_argument("--rollup", action="store_true", help="include sub-codes")
    symptoms.add_argument("--top", type=int, default=20, help="rows to show")
    symptoms.set_defaults(func=_symptoms)
