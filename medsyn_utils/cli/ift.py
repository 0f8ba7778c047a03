"""``medsyn ift export``: the instruction dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.finetune.ift import TYPES, IftOptions, export


def _export_cli(args: argparse.Namespace) -> int:
    values: dict = {}
    if args.params:
        loaded = yaml.safe_load(Path(args.params).read_text(encoding="utf-8")) or {}
        values = dict(loaded.get("ift", loaded) if isinstance(loaded, dict) else {})
    for name in ("seed", "scored_path", "tasks_path", "store_path"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if values.get("scored_path") and "types" not in values:
        values["types"] = TYPES  # a scored dataset asks for its synthetic notes too
    known = set(IftOptions.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ParameterError(f"unknown IFT option(s) {sorted(unknown)}: valid are {', '.join(sorted(known))}")
    for key in ("splits", "types"):
        if key in values:
            values[key] = tuple(values[key])
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
