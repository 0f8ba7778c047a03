"""The ``medsyn`` command. Each stage module adds its own sub-commands through ``add_cli``.

Errors of the kit (:class:`~medsyn_utils.errors.MedsynError`) print as one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import MedsynError

# Modules that contribute sub-commands, in the order they appear in ``medsyn --help``.
COMMAND_MODULES = (
    "medsyn_utils.data_cli",
    "medsyn_utils.graph",
    "medsyn_utils.tasks",
    "medsyn_utils.generation",
    "medsyn_utils.scoring",
    "medsyn_utils.downstream",
    "medsyn_utils.ift",
    "medsyn_utils.runner",
    "medsyn_utils.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medsyn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medsyn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:  # the stage is not written yet
                continue
            raise
        add_cli = getattr(module, "add_cli", None)
        if add_cli is not None:
            add_cli(subparsers)
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
