"""medsyn: synthetic Russian clinical notes, stage by stage (MedSyn kit).

Each module of ``medsyn_utils.cli`` adds its sub-commands through ``add_cli``.

Errors of the kit (:class:`~medsyn_utils.core.errors.MedsynError`) print as one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from medsyn_utils import __version__
from medsyn_utils.core.errors import MedsynError

# Modules that contribute sub-commands, in the order they appear in ``medsyn --help``.
COMMAND_MODULES = (
    "medsyn_utils.cli.data",
    "medsyn_utils.cli.kg",
    "medsyn_utils.cli.tasks",
    "medsyn_utils.cli.generate",
    "medsyn_utils.cli.serve",
    "medsyn_utils.cli.score",
    "medsyn_utils.cli.downstream",
    "medsyn_utils.cli.ift",
    "medsyn_utils.cli.run",
    "medsyn_utils.cli.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsyn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medsyn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except MedsynError as error:
        print(f"medsyn: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medsyn: interrupted; finished work is kept", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
