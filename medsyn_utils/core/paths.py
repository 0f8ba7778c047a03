"""Where things live: the project root, the user cache, run folders."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path | None:
    """The checkout this kit runs from (the folder holding ``pyproject.toml`` and ``notebooks/``).

    Walks up from the current directory first (a notebook runs in ``notebooks/``), then from this
    file; ``None`` when the package is installed outside a checkout.
    """
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "medsyn_utils").is_dir():
                return folder
    return None


def resolve(path: str | os.PathLike[str]) -> Path:
    """Resolve a relative path against the project root (what notebook parameters say they are).

    The command line makes its paths absolute against the current folder before calling the
    kit (``medsyn_utils.cli.app.absolute_paths``), and the runner passes absolute run folders to
    notebooks, so this only decides for paths typed into a notebook.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    root = project_root()
    return (root / p) if root is not None else p.resolve()


def cache_dir(*parts: str) -> Path:
    """The kit's user cache (``MEDSYN_CACHE_DIR``, else ``~/.cache/medsyn``), created on demand."""
    base = os.environ.get("MEDSYN_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "medsyn"
    folder = root.joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def folder_problem(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder`` cannot be made or written (the first part of it that exists decides).

    ``None`` when it can; else a phrase such as ``/x/a is a file, not a folder`` for an error.
    """
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                return f"{part} is a file, not a folder"
            if not os.access(part, os.W_OK | os.X_OK):
                return f"{part} is not writable"
            return None
    return None


def run_dir(path: str | os.PathLike[str]) -> Path:
    """A run folder, created on demand (relative paths land under the project root).

    A path that is a file, lies under a file or cannot be written is a
    :class:`~medsyn_utils.core.errors.ParameterError` naming it.
    """
    from medsyn_utils.core.errors import ParameterError

    folder = resolve(path)
    problem = folder_problem(folder)
    if problem:
        raise ParameterError(f"run folder {folder}: {problem}: give another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
