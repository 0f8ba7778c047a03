"""``medsyn score``: BERTScore recall/precision, quality checks and the filter."""

from __future__ import annotations

import argparse
import json
import sys

from medsyn_utils.core import artefacts
from medsyn_utils.cli.options import add_config_options, config_from_args
from medsyn_utils.core.paths import resolve
from medsyn_utils.score.calibration import calibrate, paper_reference_scorer
from medsyn_utils.score.config import ScoringConfig
from medsyn_utils.score.encoders import PAPER_ENCODER
from medsyn_utils.score.filter import PAPER_THRESHOLDS
from medsyn_utils.score.layout import load_scoring_input
from medsyn_utils.score.scorer import NoteScorer
from medsyn_utils.score.stage import score_table, summary


def _notice(text: str) -> None:
    print(text, file=sys.stderr)


def _thresholds(args: ScoringConfig, scorer: NoteScorer,
                quiet: bool) -> tuple[dict[str, float], dict | None]:
    """The thresholds in use: as given, or (``--calibrate``) mapped to this encoder as notebook 04
    maps them; returns them with the calibration table's rows."""
    given = {"symptoms_recall": args.recall_threshold, "anamnesis_precision": args.precision_threshold}
    if not args.calibrate:
        if scorer.info.name != PAPER_ENCODER and given == PAPER_THRESHOLDS:
            _notice(f"note: the thresholds {given['symptoms_recall']}/{given['anamnesis_precision']} "
                    f"are on the scale of {PAPER_ENCODER}; pass --calibrate to map them to "
                    f"{scorer.info.name}")
        return given, None
    reference = paper_reference_scorer(args.paper_encoder, batch_size=args.batch_size) \
        if args.paper_encoder else None
    calibration = calibrate(scorer, args.calibration_size, args.seed, paper_thresholds=given,
                            reference=reference, assumed_percentile=args.assumed_percentile,
                            progress=not quiet)
    for row in calibration.table.to_dict("records"):
        _notice(f"calibrated {row['score']}: {row['paper_threshold']} → {row['mapped_threshold']:.4f} "
                f"(percentile {row['percentile']:.1f}, {row['percentile_source']})")
    return calibration.thresholds, calibration.table.to_dict("records")


def _score_cli(args: argparse.Namespace) -> int:
    config = config_from_args(ScoringConfig, args)  # every value checked before any work
    out = artefacts.check_writable(resolve(args.out))
    scoring_input = load_scoring_input(resolve(args.input),
                                       None if args.tasks is None else resolve(args.tasks))
    _notice(scoring_input.describe())
    scorer = NoteScorer(config.encoder, config.layer, idf=config.idf, windowed=config.windowed,
                        batch_size=config.batch_size, device=config.device or None,
                        precision=config.precision)
    thresholds, calibration = _thresholds(config, scorer, args.quiet)
    scored = score_table(scoring_input.table, scorer, recall_threshold=thresholds["symptoms_recall"],
                         precision_threshold=thresholds["anamnesis_precision"],
                         copy_threshold=config.copy_threshold, out=out, progress=not args.quiet,
                         chunk_rows=config.chunk_rows, keep_chunks=args.keep_chunks,
                         engine=config.engine, ray_options=dict(
                             address=config.ray_address, actors=config.actors,
                             cpus_per_actor=config.cpus_per_actor,
                             gpus_per_actor=config.gpus_per_actor))
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
