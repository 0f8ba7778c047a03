"""``medsyn evaluate``: per-symptom faithfulness of a scored table (the options: EvaluationConfig)."""

from __future__ import annotations

import argparse
import json
import sys
import typing

from pydantic import ValidationError

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.core.paths import resolve


def _options(parser: argparse.ArgumentParser) -> None:
    from medsyn_utils.evaluate.config import EvaluationConfig

    for name, field in EvaluationConfig.model_fields.items():
        if name in ("input_path", "show_notes"):
            continue
        flag = "--" + name.replace("_", "-")
        kind = field.annotation
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                default=field.default, help=field.description)
        elif typing.get_origin(kind) is typing.Literal:
            parser.add_argument(flag, dest=name, choices=typing.get_args(kind),
                                default=field.default, help=field.description)
        else:
            parser.add_argument(flag, dest=name, type=kind, default=field.default,
                                help=f"{field.description} (default {field.default})")


def _evaluate_cli(args: argparse.Namespace) -> int:
    from medsyn_utils.evaluate.config import EvaluationConfig
    from medsyn_utils.evaluate.stage import run_evaluation

    values = {name: getattr(args, name) for name in EvaluationConfig.model_fields
              if hasattr(args, name)}
    try:
        config = EvaluationConfig(**values)
    except ValidationError as error:
        first = error.errors()[0]
        raise ParameterError(f"--{'-'.join(map(str, first['loc']))}={first.get('input')!r}: "
                             f"{first['msg']}") from None
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
    _options(parser)
    parser.add_argument("--no-figures", action="store_true", help="write no figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_evaluate_cli)
