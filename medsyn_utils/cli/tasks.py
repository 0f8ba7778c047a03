"""``medsyn tasks``: build the task table."""

from __future__ import annotations

import argparse
import json

from medsyn_utils.core.data import use_data_dir
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.core.provenance import write_stage_record
from medsyn_utils.tasks.build import (NOTEBOOK_ONLY, STAGE, build_task_table, load_params,
                                      parse_options, task_data_files)
from medsyn_utils.tasks.table import write_task_table
from medsyn_utils.tasks.views import task_summary


def _cli(args: argparse.Namespace) -> int:
    options = load_params(args.params)
    n = args.n if args.n is not None else options.get("n")
    seed = args.seed if args.seed is not None else options.get("seed")
    use_data_dir(options.get("data_dir") or None)
    options = {k: v for k, v in options.items() if k not in ("n", "seed", *NOTEBOOK_ONLY)}
    if n is None or seed is None:
        raise ParameterError("give --n and --seed (or n: and seed: in the params file)")
    frame = build_task_table(n, seed, **options)
    paths = write_task_table(frame, args.out)
    summary = task_summary(frame)
    opts = parse_options(options)
    write_stage_record(args.out, STAGE, parameters={"n": n, "seed": seed, **opts.model_dump()},
                       metrics=summary, data_files=task_data_files(opts),
                       artefacts={k: {"path": str(p), "rows": len(frame)} for k, p in paths.items()})
    print(json.dumps({"tasks": len(frame), **{k: str(p) for k, p in paths.items()}},
                     ensure_ascii=False))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="build the task table (codes, symptoms, "
                                                 "examples, prompts)")
    parser.add_argument("--n", type=int, default=None, help="number of tasks")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--out", required=True, help="run folder for tasks.parquet/tasks.csv")
    parser.add_argument("--params", default=None,
                        help="YAML of task options (a top-level 'tasks:' mapping is used if "
                             "present, e.g. params/default.yaml)")
    parser.set_defaults(func=_cli)
