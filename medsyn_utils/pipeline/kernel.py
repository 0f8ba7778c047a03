"""The Jupyter kernel notebooks run in: this interpreter, whatever kernelspecs the user has."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from medsyn_utils.core.errors import MedsynError
from medsyn_utils.core.provenance import write_json_atomic
from medsyn_utils.pipeline.stages import KERNEL_NAME


def ensure_python_kernel(name: str = KERNEL_NAME) -> dict[str, str]:
    """Make the kernel ``name`` start this interpreter, so notebooks see this environment.

    Jupyter may resolve ``python3`` to a kernelspec of another Python (one in the user's
    ``~/.local/share/jupyter``, say). When it does, a kernelspec for ``sys.executable`` is written
    into the kit's cache and put first on ``JUPYTER_PATH`` for this process and its kernels: the
    user never sets up a kernel by hand.
    """
    import importlib.util

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from medsyn_utils.core.paths import cache_dir

    if importlib.util.find_spec("ipykernel") is None:
        raise MedsynError(f"ipykernel is not installed in {sys.prefix}: install the kit with "
                          f"`pip install -e .` (it depends on ipykernel)")

    def current() -> tuple[str | None, str | None]:
        try:
            spec = KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            return None, None
        return (spec.argv[0] if spec.argv else None), spec.resource_dir

    def is_ours(executable: str | None) -> bool:
        if executable is None:
            return False
        short = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
        if executable in short:  # jupyter_client replaces these with sys.executable
            return True
        # no resolve(): a venv's python is a link to the base interpreter, a different env
        return os.path.abspath(executable) == os.path.abspath(sys.executable)

    executable, where = current()
    if is_ours(executable):
        return {"name": name, "python": sys.executable, "kernelspec": str(where), "set_up": "no"}
    key = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    folder = cache_dir("jupyter", key)
    spec_dir = folder / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    from ipykernel.kernelspec import get_kernel_dict

    spec = dict(get_kernel_dict())  # ipykernel's own spec (argv, metadata) for this Python
    spec["argv"] = [sys.executable, *spec["argv"][1:]]
    spec["display_name"] = f"Python 3 ({sys.prefix})"
    write_json_atomic(spec_dir / "kernel.json", spec)
    paths = [str(folder)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    executable, where = current()
    if not is_ours(executable):
        raise MedsynError(f"kernel {name!r} still starts {executable} (from {where}), not "
                          f"{sys.executable}: remove that kernelspec or set JUPYTER_PATH")
    return {"name": name, "python": sys.executable, "kernelspec": str(where),
            "set_up": f"JUPYTER_PATH={folder}"}


def engine_options() -> dict[str, Any]:
    """Ask jupyter_client for CurveZMQ keys where it can provision them.

    Encrypted kernel sockets where the kernel supports them; it also keeps ipykernel's
    "running over TCP without encryption" warning out of every stage's output.
    """
    try:
        import zmq
        from traitlets.config import Config
    except ImportError:
        return {}
    if not zmq.has("curve"):
        return {}
    return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}



def logged_kernel_manager(log_path: Path) -> type:
    """A kernel manager whose kernel writes its own stdout/stderr to ``log_path``.

    The kernel's log (ipykernel's "Exception in message handler" when a run is interrupted and
    its sockets close, C-level library output) then stays out of the terminal and lands next to
    the executed notebook, where it helps after a failure.
    """
    from jupyter_client import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):  # type: ignore[override]
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as handle:  # the kernel keeps its own descriptor
                kw.setdefault("stdout", handle)
                kw.setdefault("stderr", handle)
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return LoggedKernelManager
