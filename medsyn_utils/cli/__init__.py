"""The ``medsyn`` command line: argparse only, calling the packages."""

from medsyn_utils.cli.app import main

__all__ = ["main"]
