"""``medsyn score``: BERTScore recall/precision, quality checks and the filter."""

from __future__ import annotations

import argparse
import json
import sys

from medsyn_utils.core import artefacts
from medsyn_utils.cli.ray_options import add_ray_options, ray_options
from medsyn_utils.core.paths import resolve
from medsyn_utils.score import quality
from medsyn_utils.score.calibration import calibrate, paper_reference_scorer
from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5, PAPER_ENCODER
from medsyn_utils.score.filter import PAPER_THRESHOLDS
from medsyn_utils.score.layout import load_scoring_input
from medsyn_utils.score.scorer import PRECISIONS, NoteScorer
from medsyn_utils.score.stage import score_table, summary


def _notice(text: str) -> None:
    print(text, file=sys.stderr)


def _thresholds(args: argparse.Namespace, scorer: NoteScorer) -> tuple[dict[str, float], dict | None]:
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
                            progress=not args.quiet)
    for row in calibration.table.to_dict("records"):
        _notice(f"calibrated {row['score']}: {row['paper_threshold']} → {row['mapped_threshold']:.4f} "
                f"(percentile {row['percentile']:.1f}, {row['percentile_source']})")
    return calibration.thresholds, calibration.table.to_dict("records")


def _score_cli(args: argparse.Namespace) -> int:
    out = artefacts.check_writable(resolve(args.out))  # before any work
    scoring_input = load_scoring_input(resolve(args.input),
                                       None if args.tasks is None else resolve(args.tasks))
    _notice(scoring_input.describe())
    scorer = NoteScorer(args.encoder, args.layer, idf=args.idf, windowed=args.windowed,
                        batch_size=args.batch_size, device=args.device, precision=args.precision,
                        embedding_cache_dir="")  # pooled vectors for the evaluation (user cache)
    thresholds, calibration = _thresholds(args, scorer)
    scored = score_table(scoring_input.table, scorer, recall_threshold=thresholds["symptoms_recall"],
                         precision_threshold=thresholds["anamnesis_precision"],
                         copy_threshold=args.copy_threshold, out=out, progress=not args.quiet,
                         chunk_rows=args.chunk_rows, keep_chunks=args.keep_chunks,
                         engine=args.engine, ray_options=ray_options(args))
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
                    "Large tables are scored in chunks kept in <out>.chunks/: a re-run continues.")
    parser.add_argument("--in", dest="input", required=True,
                        help="generations.jsonl, or a CSV/Parquet table in the published layout")
    parser.add_argument("--out", required=True, help="scored table to write (.csv or .parquet)")
    parser.add_argument("--tasks", default=None, help="task table of a generation store "
                        "(default: tasks.parquet or tasks.csv next to it)")
    parser.add_argument("--encoder", default=EMBEDDED_E5,
                        help=f"{EMBEDDED_E5} (default, offline), a local folder, or a hub id "
                             f"such as {PAPER_ENCODER} (the paper's)")
    parser.add_argument("--layer", type=int, default=DEFAULT_LAYER, help="encoder layer (default 9)")
    parser.add_argument("--recall-threshold", type=float, default=PAPER_THRESHOLDS["symptoms_recall"],
                        help="pass when symptoms_recall >= this (paper: 0.65 with its encoder)")
    parser.add_argument("--precision-threshold", type=float,
                        default=PAPER_THRESHOLDS["anamnesis_precision"],
                        help="pass when anamnesis_precision > this (paper: 0.7 with its encoder)")
    parser.add_argument("--calibrate", action="store_true",
                        help="map the thresholds (paper scale) to this encoder by percentile on real "
                             "train notes, as notebook 04 does")
    parser.add_argument("--calibration-size", type=int, default=100, help="real notes for --calibrate")
    parser.add_argument("--paper-encoder", default="",
                        help=f"measure the percentiles with this encoder (e.g. {PAPER_ENCODER}, "
                             f"where it loads); empty: use --assumed-percentile")
    parser.add_argument("--assumed-percentile", type=float, default=10.0,
                        help="percentile of real notes used without the paper's encoder")
    parser.add_argument("--seed", type=int, default=0, help="which real notes calibrate")
    parser.add_argument("--copy-threshold", type=float, default=quality.DEFAULT_COPY_THRESHOLD,
                        help="flag a note whose share of 8-grams copied from its example reaches this")
    parser.add_argument("--idf", action="store_true", help="bert-score idf weighting (off in the paper)")
    parser.add_argument("--windowed", action="store_true",
                        help="score texts over the encoder limit whole (overlapping windows)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (at most)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda where available)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="encoder precision: fp32 (default), bf16 (CUDA, or a CPU with "
                             "AVX512-BF16/AMX: 1.1-1.7x, 99.3 %% of filter decisions as fp32), int8 or "
                             "int8-attention (CPU), fp16 (CUDA), auto (the measured default: fp32 "
                             "today); see benchmarks/README.md")
    parser.add_argument("--chunk-rows", type=int, default=256, help="notes per resumable chunk")
    add_ray_options(parser, "encoder replicas, each loaded once (the same table)", actors=2)
    parser.add_argument("--keep-chunks", action="store_true", help="keep <out>.chunks/ after writing")
    parser.add_argument("--json", action="store_true", help="print one JSON object (notices to stderr)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_score_cli)
