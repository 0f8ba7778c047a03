"""``medsyn downstream``: the RuMedTop3 ICD-code experiment, its controls and the reproduction table."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from medsyn_utils.cli.options import add_config_options, config_from_args
from medsyn_utils.downstream.config import DownstreamConfig
from medsyn_utils.downstream.experiment import KS


def _ci(entry: dict[str, Any]) -> str:
    if entry["ci_low"] is None:
        return f"{100 * entry['change']:+.2f} (no interval: bootstrap 0)"
    return (f"{100 * entry['change']:+.2f} [{100 * entry['ci_low']:+.2f}, "
            f"{100 * entry['ci_high']:+.2f}]")


def _print_summary(metrics: dict[str, Any], out: Any) -> None:
    from medsyn_utils.downstream.inputs import steps_line

    counts = metrics["synthetic"]
    print(f"synthetic notes: {steps_line(counts)}", file=out)
    leakage = counts.get("leakage", {})
    if leakage:
        print(f"leakage checks: ran {', '.join(leakage.get('ran', [])) or 'none'}; could not run "
              f"{', '.join(leakage.get('could_not_run', [])) or 'none'}; flagged "
              f"{leakage.get('flagged_rows', 0)} row(s)", file=out)
    for column in ("generation_model", "prior", "example_source"):
        if f"{column}_counts" in counts:
            print(f"  selected per {column}: {counts[f'{column}_counts']}", file=out)
    for entry in metrics["settings"]:
        test, sd = entry["test"], entry.get("test_sd_over_seeds")
        values = "  ".join(f"acc@{k} {100 * test[f'acc@{k}']:.2f}"
                           + (f"±{100 * sd[f'acc@{k}']:.2f}" if sd else "") for k in KS)
        print(f"{entry['setting']:22} test {values}  ({entry['fits']} fit(s))", file=out)
    for name, member in metrics.get("panel", {}).items():
        for comparison in member["comparisons"]:
            if comparison["other"] != "real_synthetic":
                continue
            groups = [g for g in comparison if g == "all_codes" or g.startswith("hard_")]
            print(f"[{name}] {comparison['other']} − {comparison['base']} (95 % CI, points): "
                  + "; ".join(f"{group} acc@1 {_ci(comparison[group]['acc@1'])}" for group in groups),
                  file=out)
    for label, entries in metrics.get("verdicts", {}).items():
        for entry in entries:
            if entry["codes"] == "all_codes":
                print(f"verdict [{label}] {entry['difference']}: {entry['verdict']}", file=out)


def _cli(args: argparse.Namespace) -> int:
    from medsyn_utils.core.paths import resolve, run_dir
    from medsyn_utils.downstream import stage

    config = config_from_args(DownstreamConfig, args)  # every value checked before any work
    out = run_dir(args.out)
    study = stage.run(config, resolve(args.synthetic), out, progress=not args.json)
    if not args.no_figures:
        from medsyn_utils.analysis.downstream_figures import write_downstream_figures

        write_downstream_figures(study.metrics, study.per_code, out / "figures" / "downstream")
    stream = sys.stderr if args.json else sys.stdout
    _print_summary(study.metrics, stream)
    print(f"wrote {', '.join(str(p) for p in study.paths.values())}", file=stream)
    if args.json:
        print(json.dumps({"summary": study.metrics["summary"], "verdicts": study.metrics["verdicts"],
                          "reproduction": study.reproduction}, ensure_ascii=False, default=str))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "downstream", help="RuMedTop3 code prediction: real vs real + synthetic notes, with controls",
        description="The options are the fields of the downstream stage's config "
                    "(`medsyn params downstream`); list options take values separated by spaces "
                    "or commas (--controls oversampled,class_weighted).")
    parser.add_argument("--synthetic", required=True,
                        help="scored dataset (scored.parquet/.csv) or the published CSV")
    parser.add_argument("--out", required=True,
                        help="output folder (downstream_metrics.json, reproduction.md/.csv, figures/)")
    add_config_options(parser, DownstreamConfig)
    parser.add_argument("--no-figures", action="store_true", help="write numbers only")
    parser.add_argument("--json", action="store_true",
                        help="print the summary and the reproduction rows as one JSON object")
    parser.set_defaults(func=_cli)
