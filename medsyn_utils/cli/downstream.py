"""``medsyn downstream``: the RuMedTop3 ICD-code experiment, its controls and the reproduction table."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from medsyn_utils.downstream.classifiers import CLASSIFIERS, DEFAULT_C, DEFAULT_TFIDF
from medsyn_utils.downstream.experiment import CONTROLS, KS
from medsyn_utils.score.filter import PAPER_PRECISION, PAPER_RECALL


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _options(args: argparse.Namespace) -> dict[str, Any]:
    if args.classifier == "transformer":
        return {"encoder": args.encoder, "epochs": args.epochs, "batch_size": args.batch_size,
                "max_steps": args.max_steps}
    return {"char_ngrams": None if args.no_char_ngrams else DEFAULT_TFIDF["char_ngrams"],
            "max_features": args.max_features or None, "min_df": args.min_df, "C": args.C}


def _ci(entry: dict[str, Any]) -> str:
    return (f"{100 * entry['change']:+.2f} [{100 * entry['ci_low']:+.2f}, "
            f"{100 * entry['ci_high']:+.2f}]")


def _print_summary(metrics: dict[str, Any], out: Any) -> None:
    counts = metrics["synthetic"]
    print(f"synthetic notes: {counts['input_rows']} read, {counts['rows_selected']} selected, "
          f"{counts['kept']} used ({counts['outside_task_codes']} outside the 105 codes, "
          f"{counts['leaked_dev_test']} drawing on dev/test text, {counts['failed_filter']} failed "
          f"the filter, {counts['filter_not_applicable']} where the filter did not apply)", file=out)
    for column in ("generation_model", "prior", "example_source"):
        if f"{column}_counts" in counts:
            print(f"  selected per {column}: {counts[f'{column}_counts']}", file=out)
    for entry in metrics["settings"]:
        test, sd = entry["test"], entry.get("test_sd_over_seeds")
        values = "  ".join(f"acc@{k} {100 * test[f'acc@{k}']:.2f}"
                           + (f"±{100 * sd[f'acc@{k}']:.2f}" if sd else "") for k in KS)
        print(f"{entry['setting']:22} test {values}  ({entry['fits']} fit(s))", file=out)
    for comparison in metrics["comparisons"]:
        groups = [g for g in comparison if g == "all_codes" or g.startswith("hard_")]
        print(f"{comparison['other']} − {comparison['base']} (paired 95 % CI, points): " + "; ".join(
            f"{group} acc@1 {_ci(comparison[group]['acc@1'])}" for group in groups), file=out)


def _cli(args: argparse.Namespace) -> int:
    from medsyn_utils.core.paths import resolve, run_dir
    from medsyn_utils.downstream.study import run_study

    out = run_dir(args.out)
    study = run_study(resolve(args.synthetic), out, classifier=args.classifier,
                      classifier_options=_options(args), seeds=args.seeds, grid=args.grid,
                      controls=_list(args.controls), use_filter=args.use_filter,
                      recall_threshold=args.recall_threshold,
                      precision_threshold=args.precision_threshold, n_bootstrap=args.bootstrap,
                      hard_quantile=args.hard_quantile, models=_list(args.models),
                      priors=_list(args.priors), example_sources=_list(args.example_sources),
                      by_group=not args.no_groups, progress=not args.json)
    if not args.no_figures:
        from medsyn_utils.analysis.downstream_figures import write_downstream_figures

        write_downstream_figures(study.metrics, study.per_code, out / "figures" / "downstream")
    stream = sys.stderr if args.json else sys.stdout
    _print_summary(study.metrics, stream)
    print(f"wrote {', '.join(str(p) for p in study.paths.values())}", file=stream)
    if args.json:
        print(json.dumps({"summary": study.metrics["summary"], "reproduction": study.reproduction},
                         ensure_ascii=False, default=str))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "downstream", help="RuMedTop3 code prediction: real vs real + synthetic notes, with controls")
    parser.add_argument("--synthetic", required=True,
                        help="scored dataset (scored.parquet/.csv) or the published CSV")
    parser.add_argument("--out", required=True,
                        help="output folder (downstream_metrics.json, reproduction.md/.csv, figures/)")
    parser.add_argument("--models", default="", help="comma-separated generation_model values to use")
    parser.add_argument("--priors", default="", help="comma-separated prior values to use")
    parser.add_argument("--example-sources", default="", help="comma-separated example_source values")
    parser.add_argument("--no-groups", action="store_true",
                        help="skip the per model × prior rows of the reproduction table")
    parser.add_argument("--seeds", type=int, default=1,
                        help="seeds for what is random (subsets, oversampling, transformer); "
                             "a deterministic fit on a full set runs once")
    parser.add_argument("--grid", action="store_true",
                        help="run the paper's grid of (real, synthetic) shares")
    parser.add_argument("--controls", default="oversampled,class_weighted",
                        help=f"comma-separated controls among {', '.join(CONTROLS)} (empty: none)")
    parser.add_argument("--use-filter", action="store_true",
                        help="train only on notes that passed the BERTScore filter (needs scores)")
    parser.add_argument("--recall-threshold", type=float, default=PAPER_RECALL,
                        help="filter threshold when the table has no passed_filter column")
    parser.add_argument("--precision-threshold", type=float, default=PAPER_PRECISION,
                        help="filter threshold when the table has no passed_filter column")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default="tfidf-svm")
    parser.add_argument("--C", type=float, default=DEFAULT_C, help="tfidf-*: regularisation (chosen on dev)")
    parser.add_argument("--min-df", type=int, default=DEFAULT_TFIDF["min_df"],
                        help="tfidf-*: drop n-grams in fewer real train notes (chosen on dev)")
    parser.add_argument("--no-char-ngrams", action="store_true",
                        help="tfidf-*: word n-grams only (faster, a little less accurate)")
    parser.add_argument("--max-features", type=int, default=0,
                        help="tfidf-*: vocabulary cap, 0 = none (the vocabulary is real train only)")
    parser.add_argument("--encoder", default="DeepPavlov/rubert-base-cased",
                        help="encoder id or local path (transformer classifier)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (transformer classifier)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (transformer classifier)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on steps, 0 = none (transformer)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples for the intervals")
    parser.add_argument("--hard-quantile", type=float, default=0.25,
                        help="hard codes: this quantile of train frequency / of real-only dev accuracy")
    parser.add_argument("--no-figures", action="store_true", help="write numbers only")
    parser.add_argument("--json", action="store_true",
                        help="print the summary and the reproduction rows as one JSON object")
    parser.set_defaults(func=_cli)
