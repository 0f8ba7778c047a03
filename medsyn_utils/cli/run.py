"""``medsyn run`` and ``medsyn params``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from medsyn_utils.pipeline.execution import run_plan
from medsyn_utils.core.config import describe, format_config
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.core.paths import project_root
from medsyn_utils.pipeline.contract import config_for
from medsyn_utils.pipeline.parameters import declared_parameters, format_parameters
from medsyn_utils.pipeline.planning import plan_run
from medsyn_utils.pipeline.stages import MANIFEST, STAGE_BY_NAME, STAGES, find_notebook


def _params_command(args: argparse.Namespace) -> int:
    if not args.notebook.strip():
        raise ParameterError(f"medsyn params needs a stage name ({', '.join(STAGE_BY_NAME)}) or "
                             f"a notebook path, got an empty name")
    root = Path(args.root).resolve() if args.root else None
    path = find_notebook(args.notebook, root)
    stage = next((s for s in STAGES if Path(s.notebook).name == path.name), None)
    home = project_root() or Path.cwd()
    own = stage is not None and path.resolve() == (home / stage.notebook).resolve()
    contract = config_for(stage.name) if own else None
    if contract is None:  # a notebook of one's own: its parameters cell is its contract
        params = declared_parameters(path)
        if args.json:
            print(json.dumps({name: {"type": p.type_label, "default": p.default_text,
                                     "help": p.help, "low": p.low, "high": p.high,
                                     "choices": p.choices} for name, p in params.items()},
                             ensure_ascii=False, indent=2))
            return 0
        print(f"{path}" + (f"  (stage {stage.name}; set with {stage.name}.NAME in a parameter "
                           f"file or --set)" if stage else ""))
        print(format_parameters(path, params))
        return 0
    if args.json:
        print(json.dumps({row.pop("name"): row for row in describe(contract)},
                         ensure_ascii=False, indent=2, default=str))
        return 0
    print(f"{path}  (stage {stage.name}, {contract.__module__}.{contract.__name__}; set with "
          f"{stage.name}.NAME in a parameter file or --set)")
    print(format_config(contract))
    return 0


def _run_command(args: argparse.Namespace) -> int:
    plan = plan_run(args.params, overrides=args.set or [], out=args.out, only=args.only or [],
                    root=args.root)
    print(f"run folder: {plan.run_dir}")
    command = ["medsyn", "run", *sys.argv[2:]] if sys.argv[1:2] == ["run"] else None
    status, manifest = run_plan(plan, force=args.force, progress=not args.no_progress,
                                command=command)
    if status != 0:
        print(f"medsyn: error: {manifest['error']}", file=sys.stderr)
    counts: dict[str, int] = {}
    for name in manifest["selected_stages"]:
        now = manifest["stages"].get(name, {}).get("status_now", "not run")
        counts[now] = counts.get(now, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    print(f"{'finished' if status == 0 else 'stopped'} in {manifest['duration_s']:.1f} s "
          f"({summary}); manifest {plan.run_dir / MANIFEST}")
    print(f"run folder: {plan.run_dir}")
    return status


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``medsyn run`` and ``medsyn params``."""
    run = subparsers.add_parser(
        "run", help="run the study's notebooks headless into a run folder",
        description="Execute the stage notebooks with papermill into <out>/notebooks/, with "
                    "checked parameters, a manifest and incremental re-runs.")
    run.add_argument("--params", required=True, metavar="FILE",
                     help="parameter file, e.g. params/default.yaml")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override: stage.name=value, or name=value for a common parameter "
                          "(repeatable; values read as YAML)")
    run.add_argument("--out", metavar="FOLDER",
                     help="run folder (default: the file's run_dir, else outputs/<file stem>)")
    run.add_argument("--only", action="append", metavar="STAGES",
                     help=f"comma-separated stages to run ({', '.join(STAGE_BY_NAME)})")
    run.add_argument("--force", action="store_true", help="re-run stages even if unchanged")
    run.add_argument("--root", metavar="FOLDER",
                     help="project folder holding notebooks/ (default: this checkout)")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    run.set_defaults(func=_run_command)

    params = subparsers.add_parser(
        "params", help="show a stage's parameters (types, defaults, ranges, choices, help)",
        description="Print a stage's config (the contract the notebook, the stage command "
                    "and `medsyn run` share), or the parameters cell of another notebook.")
    params.add_argument("notebook", help=f"stage name ({', '.join(STAGE_BY_NAME)}) or a "
                                         f"notebook path")
    params.add_argument("--root", metavar="FOLDER", help="project folder holding notebooks/")
    params.add_argument("--json", action="store_true", help="machine-readable output")
    params.set_defaults(func=_params_command)
