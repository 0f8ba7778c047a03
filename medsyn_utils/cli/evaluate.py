"""``medsyn evaluate``: per-symptom faithfulness of a scored table (the options: EvaluationConfig)."""

from __future__ import annotations

import argparse
import json
import sys

from medsyn_utils.cli.options import add_config_options, config_from_args
from medsyn_utils.core.paths import resolve
from medsyn_utils.evaluate.config import EvaluationConfig


def _evaluate_cli(args: argparse.Namespace) -> int:
    from medsyn_utils.evaluate.stage import run_evaluation

    config = config_from_args(EvaluationConfig, args)  # every value checked before any work
    out = resolve(args.out)
    notes, summary = run_evaluation(resolve(args.input), out, config, progress=not args.quiet)
    figures = []
    if not args.no_figures:
        from medsyn_utils.analysis.evaluation_figures import make_evaluation_figures
        figures = [f for record in make_evaluation_figures(summary, out / "figures")
                   for f in record.files]
    result = {"out": str(out), "notes": summary["notes"], "groups": summary["groups"],
              "figures": figures}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"evaluated {summary['notes']} notes → {out}")
    for g in summary["groups"]:
        cov = g["symptom_coverage"]["mean"]
        print(f"  {g['generation_model']} / {g['prior']}: {g['notes']} notes, coverage "
              f"{'—' if cov is None else f'{cov:.3f}'}, unrequested/note "
              f"{g['unrequested_per_note']['mean']:.2f}", file=sys.stdout)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="per-symptom faithfulness (affirmed/negated/missing) of a scored table",
        description="For every note and every symptom it was asked to mention: affirmed, negated "
                    "or missing, with the span; knowledge-graph findings nobody asked for; a "
                    "summary per model × prior with bootstrap intervals. Writes evaluation.parquet, "
                    "evaluation.json, evaluation.md and figures/ under --out.")
    parser.add_argument("--in", dest="input", required=True,
                        help="scored table: the kit's scored.parquet/.csv or the published CSV")
    parser.add_argument("--out", required=True, help="folder to write the evaluation into")
    add_config_options(parser, EvaluationConfig)
    parser.add_argument("--no-figures", action="store_true", help="write no figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_evaluate_cli)
