"""The Ray options shared by ``medsyn generate`` and ``medsyn score`` (``--engine ray``)."""

from __future__ import annotations

import argparse


def add_ray_options(parser: argparse.ArgumentParser, replicas: str, actors: int) -> None:
    """``--engine``, ``--ray-address``, ``--actors``, ``--gpus-per-actor``, ``--cpus-per-actor``."""
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help=f"local (this process) or ray: {replicas} on a Ray cluster "
                             f"(extra 'cluster')")
    parser.add_argument("--ray-address", default="", help="ray engine: cluster address (empty = local Ray)")
    parser.add_argument("--actors", type=int, default=actors, help=f"ray engine: {replicas}")
    parser.add_argument("--gpus-per-actor", type=float, default=0.0, help="ray engine: GPUs per replica")
    parser.add_argument("--cpus-per-actor", type=float, default=0.0,
                        help="ray engine: CPUs per replica (0 = sized from the machine)")


def ray_options(args: argparse.Namespace) -> dict[str, object]:
    """The parsed Ray options as keyword arguments (``address``, ``actors``, …)."""
    return dict(address=args.ray_address, actors=args.actors, cpus_per_actor=args.cpus_per_actor,
                gpus_per_actor=args.gpus_per_actor)
