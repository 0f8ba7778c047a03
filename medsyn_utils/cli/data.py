"""``medsyn data check``: every source with its licence and status."""

from __future__ import annotations

import argparse
import json

from medsyn_utils.core import data


def _check(args: argparse.Namespace) -> int:
    data.data_dir()  # a MEDSYN_DATA_DIR that is no folder: one line, not a row per file
    report = data.check()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        mirror = data.data_dir()
        print(f"data: {'offline mirror ' + str(mirror) if mirror else 'download cache (pooch)'}")
        for row in report:
            print(f"{row['status']:8} {row['name']:66} {row['licence']}")
            if row["status"] != "ok":
                print(f"         {row['where']}")
    bad = [row for row in report if row["status"] != "ok"]
    print(f"{len(report) - len(bad)} of {len(report)} files ok") if not args.json else None
    return 1 if bad else 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="data sources: status, checksums, licences")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="verify every source file and show its licence")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=_check)
