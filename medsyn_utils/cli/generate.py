"""``medsyn generate``: write notes for a task table into the resumable store.

Its options are the fields of :class:`~medsyn_utils.generate.config.GenerationConfig`.
"""

from __future__ import annotations

import argparse
import json
import sys

from medsyn_utils.cli.options import add_config_options, config_from_args
from medsyn_utils.generate.config import GenerationConfig
from medsyn_utils.generate.stage import generate_store
from medsyn_utils.tasks.table import load_task_table


def _generate_cli(args: argparse.Namespace) -> int:
    config = config_from_args(GenerationConfig, args)  # every value checked before any reading
    tasks = load_task_table(args.tasks)
    report = generate_store(tasks, args.out, config, progress=not args.no_progress)
    data = report.as_dict()
    if args.json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        if report.licence:
            print(f"Model {report.model_id} is used under the {report.licence}.", file=sys.stderr)
        print(f"{report.generated} notes generated, {report.already_done} already in "
              f"{report.store_path}, {report.pending_left} left; "
              f"{report.tokens_per_s:.1f} tokens/s, {report.notes_per_min:.1f} notes/min")
        if report.rejected_lines:
            shown = ", ".join(map(str, report.rejected_lines[:5]))
            print(f"medsyn: {len(report.rejected_lines)} line(s) of {report.store_path} are not "
                  f"UTF-8 text (line {shown}): left in place, their tasks generated again",
                  file=sys.stderr)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """``medsyn generate`` (stage 03)."""
    parser = subparsers.add_parser("generate", help="generate one note per task into a JSONL store")
    parser.add_argument("--tasks", required=True, help="task table (.parquet, .csv or .jsonl)")
    parser.add_argument("--out", required=True, help="generation store (.jsonl); resumed if present")
    add_config_options(parser, GenerationConfig)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(func=_generate_cli)
