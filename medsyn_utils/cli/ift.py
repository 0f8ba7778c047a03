"""``medsyn ift export``: the instruction dataset."""

from __future__ import annotations

import argparse
import json

from medsyn_utils.core.checks import check_number, check_seed, read_yaml
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.finetune.ift import TYPES, IftOptions, export


def _ift_values(path: str) -> dict:
    """The IFT options of a YAML file (an ``ift:`` mapping or the top level), checked by key."""
    loaded = read_yaml(path, "IFT params file") or {}
    if not isinstance(loaded, dict):
        raise ParameterError(f"IFT params file {path} must be a mapping of IFT options (or hold "
                             f"an `ift:` mapping), got {type(loaded).__name__}")
    section = loaded.get("ift", loaded)
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ParameterError(f"IFT params file {path}: ift must be a mapping of IFT options, got "
                             f"{type(section).__name__} {section!r}")
    return dict(section)


def check_values(values: dict, where: str) -> dict:
    """Types and ranges of the IFT options (one line naming the key); text lists as tuples."""
    known = set(IftOptions.__dataclass_fields__)
    unknown = sorted(map(str, set(values) - known))
    if unknown:
        raise ParameterError(f"{where}: unknown IFT option(s) {unknown}: valid are "
                             f"{', '.join(sorted(known))}")
    for key in ("splits", "types"):
        if key in values:
            value = values[key]
            if isinstance(value, str):  # `splits: train` means the one split
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ParameterError(f"{where}: {key} must be a list of names, got {value!r}")
            values[key] = tuple(value)
    if "seed" in values:
        values["seed"] = check_seed(f"{where}: seed", values["seed"])
    for key, low in (("min_words", 1), ("min_words_continue", 2), ("max_per_type", 0)):
        if key in values:
            values[key] = check_number(f"{where}: {key}", values[key], low=low, integer=True)
    for key in ("scored_path", "tasks_path", "store_path"):
        if key in values and not isinstance(values[key], str):
            raise ParameterError(f"{where}: {key} must be a path, got {values[key]!r}")
    return values


def _export_cli(args: argparse.Namespace) -> int:
    values: dict = _ift_values(args.params) if args.params else {}
    where = f"IFT params file {args.params}" if args.params else "ift export"
    check_values(values, where)
    for name in ("seed", "scored_path", "tasks_path", "store_path"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.seed is not None:
        values["seed"] = check_seed("ift export --seed", args.seed)
    if values.get("scored_path") and "types" not in values:
        values["types"] = TYPES  # a scored dataset asks for its synthetic notes too
    summary = export(args.out, IftOptions(**values))
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ift", help="instruction fine-tuning data")
    sub = parser.add_subparsers(dest="ift_command", metavar="ACTION", required=True)
    export_parser = sub.add_parser("export", help="write the IFT JSONL and its card")
    export_parser.add_argument("--out", required=True, help="output .jsonl path")
    export_parser.add_argument("--params", help="YAML of options (an `ift:` mapping or top level)")
    export_parser.add_argument("--seed", type=int, help="seed for the wordings and the order")
    export_parser.add_argument("--scored-path", dest="scored_path",
                               help="scored dataset with passed_filter, for synthetic records")
    export_parser.add_argument("--tasks-path", dest="tasks_path",
                               help="task table the synthetic notes were generated from "
                                    "(default: tasks.parquet beside --scored-path)")
    export_parser.add_argument("--store-path", dest="store_path",
                               help="generation store with their task fingerprints "
                                    "(default: generations.jsonl beside --scored-path)")
    export_parser.set_defaults(func=_export_cli)
