"""``medsyn score``: BERTScore recall/precision, quality checks and the filter."""

from __future__ import annotations

import argparse
import json
import sys

from medsyn_utils.core import artefacts
from medsyn_utils.cli.options import add_config_options, config_from_args
from medsyn_utils.core.paths import resolve
from medsyn_utils.score import run as score_run
from medsyn_utils.score.config import ScoringConfig
from medsyn_utils.score.layout import load_scoring_input
from medsyn_utils.score.stage import summary


def _notice(text: str) -> None:
    print(text, file=sys.stderr)


def _score_cli(args: argparse.Namespace) -> int:
    config = config_from_args(ScoringConfig, args)  # every value checked before any work
    out = artefacts.check_writable(resolve(args.out))
    scoring_input = load_scoring_input(resolve(args.input),
                                       None if args.tasks is None else resolve(args.tasks))
    _notice(scoring_input.describe())
    scorer = score_run.make_scorer(config)
    chosen = score_run.thresholds(config, scorer, progress=not args.quiet)
    thresholds = chosen.used
    calibration = None
    if chosen.calibration is not None:
        calibration = chosen.calibration.table.to_dict("records")
        for row in calibration:
            _notice(f"calibrated {row['score']}: {row['paper_threshold']} → "
                    f"{row['mapped_threshold']:.4f} (percentile {row['percentile']:.1f}, "
                    f"{row['percentile_source']})")
    scored = score_run.score(config, scoring_input.table, scorer, thresholds, out,
                             progress=not args.quiet, keep_chunks=args.keep_chunks)
    numbers = summary(scored, scorer.last_report)
    numbers.update(out=str(out), input=scoring_input.source, thresholds_used=thresholds,
                   calibration=calibration, failed_notes_excluded=scoring_input.failed,
                   precision=scorer.precision, device=scorer.device)
    if args.json:
        print(json.dumps(numbers, ensure_ascii=False))
        return 0
    applied = numbers["criteria_applied"]
    print(f"scored {numbers['rows']} notes → {out}; passed {numbers['passed']} "
          f"({numbers['share_passed']:.1%}); hash {scorer.hash}")
    print(f"criteria applied: symptoms_recall on {applied['symptoms_recall']} notes, "
          f"anamnesis_precision on {applied['anamnesis_precision']}"
          + ("" if applied["anamnesis_precision"] else " (no style examples: no precision)")
          + f"; the filter on {applied['filter_applies']}")
    for group, counts in numbers["filter_groups"].items():
        print(f"  {group:17} {counts['notes']:7} notes, {counts['passed']:7} passed")
    report = scorer.last_report
    if report and report.long_texts:
        print(f"{report.long_texts} text(s) over {report.max_length} tokens "
              f"({'windowed' if report.windowed else f'{report.truncated_texts} cut; use --windowed'})")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="BERTScore filter + per-note checks → scored dataset (CSV/Parquet)",
        description="Score generated notes (generations.jsonl + task table, or any CSV/Parquet "
                    "with response, symptoms and anamnesis columns) in the published layout. "
                    "Large tables are scored in chunks kept in <out>.chunks/: a re-run continues. "
                    "The options are the fields of the scoring stage's config "
                    "(`medsyn params scoring`).")
    parser.add_argument("--in", dest="input", required=True,
                        help="generations.jsonl, or a CSV/Parquet table in the published layout")
    parser.add_argument("--out", required=True, help="scored table to write (.csv or .parquet)")
    parser.add_argument("--tasks", default=None, help="task table of a generation store "
                        "(default: tasks.parquet or tasks.csv next to it)")
    add_config_options(parser, ScoringConfig)
    parser.add_argument("--keep-chunks", action="store_true", help="keep <out>.chunks/ after writing")
    parser.add_argument("--json", action="store_true", help="print one JSON object (notices to stderr)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_score_cli)
