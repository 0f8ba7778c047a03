"""``medsyn downstream``: the RuMedTop3 ICD-code experiment."""

from __future__ import annotations

import argparse
from typing import Any
from medsyn_utils.downstream.experiment import CLASSIFIERS, KS, METRICS_FILE, run_downstream


def _cli(args: argparse.Namespace) -> int:
    from medsyn_utils.core.paths import run_dir

    options: dict[str, Any] = {}
    if args.classifier == "transformer":
        options = {"encoder": args.encoder, "epochs": args.epochs, "batch_size": args.batch_size,
                   "max_steps": args.max_steps}
    else:
        options = {"char_ngrams": None if args.no_char_ngrams else (2, 4),
                   "max_features": args.max_features, "max_iter": args.max_iter}
    out = run_dir(args.out)
    metrics = run_downstream(args.synthetic, out, classifier=args.classifier, seeds=args.seeds,
                             grid=args.grid, use_filter=args.use_filter,
                             recall_threshold=args.recall_threshold,
                             precision_threshold=args.precision_threshold,
                             n_bootstrap=args.bootstrap, hard_quantile=args.hard_quantile,
                             classifier_options=options)
    counts = metrics["synthetic"]
    print(f"synthetic notes: {counts['input_rows']} read, {counts['kept']} used "
          f"({counts['outside_task_codes']} outside the 105 codes, "
          f"{counts['style_example_is_dev_test']} with a dev/test style example, "
          f"{counts['failed_filter']} failed the filter)")
    for entry in metrics["settings"]:
        test = entry["test"]
        print(f"{entry['setting']:22} test " + "  ".join(
            f"acc@{k} {100 * test[f'acc@{k}']['mean']:.2f}±{100 * test[f'acc@{k}']['sd']:.2f}" for k in KS))
    print(f"wrote {out / METRICS_FILE}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "downstream", help="RuMedTop3 code prediction: real vs real + synthetic notes")
    parser.add_argument("--synthetic", required=True,
                        help="scored dataset (scored.parquet/.csv) or the published CSV")
    parser.add_argument("--out", required=True, help="output folder (downstream_metrics.json, figures/)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    parser.add_argument("--grid", action="store_true",
                        help="run the paper's grid of (real, synthetic) shares")
    parser.add_argument("--use-filter", action="store_true",
                        help="train only on notes that passed the BERTScore filter")
    parser.add_argument("--recall-threshold", type=float, default=0.65,
                        help="filter threshold when the table has no passed_filter column")
    parser.add_argument("--precision-threshold", type=float, default=0.7,
                        help="filter threshold when the table has no passed_filter column")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default="tfidf-logreg")
    parser.add_argument("--no-char-ngrams", action="store_true",
                        help="tfidf-logreg: word n-grams only (much faster, a little less accurate)")
    parser.add_argument("--max-features", type=int, default=20000,
                        help="tfidf-logreg: vocabulary size (training time grows with it)")
    parser.add_argument("--max-iter", type=int, default=100, help="tfidf-logreg: solver iterations")
    parser.add_argument("--encoder", default="DeepPavlov/rubert-base-cased",
                        help="encoder id or local path (transformer classifier)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (transformer classifier)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (transformer classifier)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on steps, 0 = none (transformer)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples for the intervals")
    parser.add_argument("--hard-quantile", type=float, default=0.25,
                        help="codes at or below this quantile of train frequency are 'hard'")
    parser.set_defaults(func=_cli)
