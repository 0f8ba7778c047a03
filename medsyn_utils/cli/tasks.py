"""``medsyn tasks``: build the task table.

Its options are the fields of :class:`~medsyn_utils.tasks.config.TasksConfig`; a ``--params``
file gives values under them (a runner file's ``tasks:`` and ``common:`` mappings).
"""

from __future__ import annotations

import argparse
import json

from medsyn_utils.cli.options import add_config_options
from medsyn_utils.core.data import use_data_dir
from medsyn_utils.core.provenance import write_stage_record
from medsyn_utils.tasks.build import (STAGE, build_task_table, load_params, parse_options,
                                      task_data_files)
from medsyn_utils.tasks.config import TasksConfig
from medsyn_utils.tasks.table import write_task_table
from medsyn_utils.tasks.views import task_summary


def _cli(args: argparse.Namespace) -> int:
    given = {name: getattr(args, name) for name in TasksConfig.model_fields if hasattr(args, name)}
    config = TasksConfig.check({**load_params(args.params), **given})  # checked before any work
    use_data_dir(config.data_dir or None)
    skip = ("n", "seed", "run_dir", "data_dir", *TasksConfig.NOTEBOOK_ONLY)
    options = {k: v for k, v in config.model_dump().items() if k not in skip}
    n, seed = config.n, config.seed
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
    parser.add_argument("--out", required=True, help="run folder for tasks.parquet/tasks.csv")
    parser.add_argument("--params", default=None,
                        help="YAML of task options (a top-level 'tasks:' mapping is used if "
                             "present, e.g. params/default.yaml); options given here win")
    add_config_options(parser, TasksConfig, only_given=True)
    parser.set_defaults(func=_cli)
