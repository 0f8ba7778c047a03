"""Ray helpers both engines use (``generate/ray_engine.py``, ``score/ray_engine.py``): the
optional import, a quiet start or join of a cluster, and the CPUs an actor takes.

Ray is the optional extra ``cluster``; nothing here imports it before it is asked for.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from medsyn_utils.core.errors import ModelError, ParameterError

CLUSTER_EXTRA = "pip install -e '.[cluster]' (or pip install 'ray[data]')"


def require_ray():
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the part the engine needs
    except ModuleNotFoundError:
        raise ParameterError(f"engine='ray' needs Ray Data, which is not installed: "
                             f"{CLUSTER_EXTRA}") from None
    return ray


def quiet_ray_logging() -> None:
    """Keep Ray's own logs and progress bars out of the user's way (the kit's bar is enough)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report over the network
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ notices (files keep them)
    for name in ("ray", "ray.data", "ray._private", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def start_ray(address: str = "", attempts: int = 3) -> bool:
    """Connect to ``address`` (empty: start a local Ray on 127.0.0.1, up to ``attempts`` tries);
    True when started here (the caller then shuts it down)."""
    ray = require_ray()
    quiet_ray_logging()
    if ray.is_initialized():
        return False
    options: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR,
                                   log_to_driver=False, configure_logging=True)
    if address:
        options["address"] = address
    else:
        options["_node_ip_address"] = "127.0.0.1"
    # A local start can fail on a busy machine: the raylet waits only a few seconds for its agent
    # process, whose imports are slow from a cold disk cache. A second try finds them cached.
    attempts = 1 if address else max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            ray.init(**options)
            return True
        except Exception as error:  # noqa: BLE001 - Ray raises bare Exception on a failed start
            ray.shutdown()
            if attempt == attempts:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray"
                raise ModelError(f"cannot start or reach {where} "
                                 f"({str(error).splitlines()[0][:160]}): start it with `ray "
                                 f"start --head`, or leave ray_address empty") from None
    return True


def actor_cpus(cpus_per_actor: float, actors: int, cluster_cpus: float) -> float:
    """CPUs each replica takes: as asked, else a share of the cluster that leaves one CPU for
    Ray Data's own tasks (0.5 each for two actors on 2 cores), at most one CPU."""
    if cpus_per_actor and cpus_per_actor > 0:
        return float(cpus_per_actor)
    spare = max(cluster_cpus - 1.0, 0.25)
    return max(0.25, min(1.0, int(4 * spare / actors) / 4))


__all__ = ["CLUSTER_EXTRA", "actor_cpus", "quiet_ray_logging", "require_ray", "start_ray"]
