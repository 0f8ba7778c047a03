"""``medsyn score``: BERTScore recall/precision, quality checks and the filter."""

from __future__ import annotations

import argparse
from medsyn_utils.score import quality
from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5, PAPER_ENCODER
from medsyn_utils.score.scoring import NoteScorer, PAPER_THRESHOLDS, read_scoring_input, score_table, summary


def _score_cli(args: argparse.Namespace) -> int:
    table = read_scoring_input(args.input, args.tasks)
    scorer = NoteScorer(args.encoder, args.layer, idf=args.idf, windowed=args.windowed,
                        batch_size=args.batch_size)
    if scorer.info.name != PAPER_ENCODER and (args.recall_threshold, args.precision_threshold) == \
            (PAPER_THRESHOLDS["symptoms_recall"], PAPER_THRESHOLDS["anamnesis_precision"]):
        print(f"note: the thresholds {args.recall_threshold}/{args.precision_threshold} are on the "
              f"scale of {PAPER_ENCODER}; calibrate them for {scorer.info.name} (notebook 04)")
    scored = score_table(table, scorer, recall_threshold=args.recall_threshold,
                         precision_threshold=args.precision_threshold,
                         copy_threshold=args.copy_threshold, out=args.out, progress=not args.quiet)
    numbers = summary(scored, scorer.last_report)
    print(f"scored {numbers['rows']} notes → {args.out}; passed {numbers['passed']} "
          f"({numbers['share_passed']:.1%}); hash {scorer.hash}")
    report = scorer.last_report
    if report and report.long_texts:
        print(f"{report.long_texts} text(s) over {report.max_length} tokens "
              f"({'windowed' if report.windowed else f'{report.truncated_texts} cut; use --windowed'})")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="BERTScore filter + per-note checks → scored dataset (CSV/Parquet)",
        description="Score generated notes (generations.jsonl + task table, or any CSV/Parquet "
                    "with response, symptoms and anamnesis columns) in the published layout.")
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
    parser.add_argument("--copy-threshold", type=float, default=quality.DEFAULT_COPY_THRESHOLD,
                        help="flag a note whose share of 8-grams copied from its example reaches this")
    parser.add_argument("--idf", action="store_true", help="bert-score idf weighting (off in the paper)")
    parser.add_argument("--windowed", action="store_true",
                        help="score texts over the encoder limit whole (overlapping windows)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_score_cli)
