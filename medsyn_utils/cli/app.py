"""medsyn: synthetic Russian clinical notes, stage by stage (MedSyn kit).

Each module of ``medsyn_utils.cli`` adds its sub-commands through ``add_cli``.

Errors of the kit (:class:`~medsyn_utils.core.errors.MedsynError`) print as one line and exit 2;
so do files that cannot be read or written (an ``OSError`` naming the path). Ctrl-C prints one
line and exits 130, whatever was running (a notebook kernel, a download, a model). Relative paths
on the command line are read from the current folder, like any command: they are made absolute
here, before a command sees them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading
from pathlib import Path

from medsyn_utils import __version__
from medsyn_utils.core.checks import os_reason
from medsyn_utils.core.errors import MedsynError

# Modules that contribute sub-commands, in the order they appear in ``medsyn --help``.
COMMAND_MODULES = (
    "medsyn_utils.cli.data",
    "medsyn_utils.cli.kg",
    "medsyn_utils.cli.tasks",
    "medsyn_utils.cli.generate",
    "medsyn_utils.cli.serve",
    "medsyn_utils.cli.score",
    "medsyn_utils.cli.evaluate",
    "medsyn_utils.cli.downstream",
    "medsyn_utils.cli.ift",
    "medsyn_utils.cli.run",
    "medsyn_utils.cli.bench",
)

# Arguments that are always paths (files or folders to read or write).
PATH_ARGUMENTS = ("out", "tasks", "input", "synthetic", "params", "scored_path", "root")
# Arguments that are a path only when it exists (else a hub id or ``embedded:...``).
MAYBE_PATH_ARGUMENTS = ("model", "encoder", "adapter", "base_model")


class KitParser(argparse.ArgumentParser):
    """argparse with the kit's one-line errors (sub-commands inherit it)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = KitParser(prog="medsyn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medsyn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def absolute_paths(args: argparse.Namespace, cwd: Path | None = None) -> argparse.Namespace:
    """Make the path arguments absolute against the current folder (not the checkout)."""
    cwd = cwd or Path.cwd()
    for name in PATH_ARGUMENTS + MAYBE_PATH_ARGUMENTS:
        value = getattr(args, name, None)
        if not isinstance(value, str) or not value or "://" in value:
            continue
        path = Path(value).expanduser()
        if path.is_absolute():
            continue
        if name in MAYBE_PATH_ARGUMENTS and not (cwd / path).exists():
            continue
        setattr(args, name, str(cwd / path))
    return args


def os_error_line(error: OSError, args: argparse.Namespace | None = None) -> str:
    """One line for a file that cannot be read or written, naming it and the cause in words."""
    where = error.filename or ""
    if error.filename2:
        where = f"{where} -> {error.filename2}"
    if not where:  # a write that failed (disk full) names no file: name the ones given
        where = f"writing to {_given_paths(args)}" if args is not None else "a file"
    return f"{where}: {os_reason(error)}"


def quiet_after_interrupt() -> None:
    """Keep the clean-up of an interrupted run (kernel sockets, event loops) off the terminal.

    After Ctrl-C, objects collected at exit (zmq sockets, asyncio tasks of the notebook client)
    report "Exception ignored" and "Task was destroyed" with tracebacks; none of it is news.
    """
    logging.disable(logging.CRITICAL)
    sys.unraisablehook = lambda unraisable: None
    threading.excepthook = lambda args: None


def _given_paths(args: argparse.Namespace | None) -> str:
    names = [f"--{n.replace('_', '-')} {getattr(args, n)}" for n in PATH_ARGUMENTS
             if args is not None and isinstance(getattr(args, n, None), str)]
    return ", ".join(names) or "the files given"


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        result = args.func(absolute_paths(args))
    except MedsynError as error:
        text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
        print(f"medsyn: error: {text}", file=sys.stderr)  # one line, whatever the message
        return 2
    except KeyboardInterrupt:
        quiet_after_interrupt()
        print("medsyn: interrupted; finished work is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `medsyn ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UnicodeDecodeError as error:  # a reader that did not name its file
        print(f"medsyn: error: an input is not UTF-8 text ({error.reason} at byte "
              f"{error.start}; inputs: {_given_paths(args)}): save it as UTF-8", file=sys.stderr)
        return 2
    except ValueError as error:
        if type(error).__name__ != "EmptyDataError":  # pandas: a 0-byte table read elsewhere
            raise
        print(f"medsyn: error: an input table is empty (inputs: {_given_paths(args)}): give a "
              f"table with a header and rows", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"medsyn: error: {os_error_line(error, args)}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
