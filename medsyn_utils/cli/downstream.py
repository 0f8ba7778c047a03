"""``medsyn downstream``: the RuMedTop3 ICD-code experiment, its controls and the reproduction table."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from medsyn_utils.downstream.classifiers import CLASSIFIERS, DEFAULT_TFIDF, PANEL
from medsyn_utils.downstream.embedding import EMBEDDED_E5
from medsyn_utils.downstream.experiment import CONTROLS, KS


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _tfidf(args: argparse.Namespace) -> dict[str, Any]:
    return {"char_ngrams": None if args.no_char_ngrams else DEFAULT_TFIDF["char_ngrams"],
            "max_features": args.max_features or None, "min_df": args.min_df}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Options of the default classifier (``--C`` only when given: else its dev-tuned value)."""
    chosen = {} if args.C is None else {"C": args.C}
    if args.classifier == "transformer":
        return {"encoder": args.encoder, "epochs": args.epochs, "batch_size": args.batch_size,
                "max_steps": args.max_steps}
    if args.classifier == "e5-logreg":
        return {"encoder": args.embedding_encoder, **chosen}
    return {**_tfidf(args), **chosen}


def _panel_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"tfidf-svm": _tfidf(args), "tfidf-logreg": _tfidf(args),
            "e5-logreg": {"encoder": args.embedding_encoder}}


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
    from medsyn_utils.downstream.study import run_study

    out = run_dir(args.out)
    study = run_study(resolve(args.synthetic), out, classifier=args.classifier,
                      classifier_options=_options(args), panel=_list(args.panel),
                      panel_options=_panel_options(args), select=args.select,
                      seeds=args.seeds, grid=args.grid,
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
        print(json.dumps({"summary": study.metrics["summary"], "verdicts": study.metrics["verdicts"],
                          "reproduction": study.reproduction}, ensure_ascii=False, default=str))
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
    parser.add_argument("--select", default="",
                        help="keep the notes passing COLUMN OP VALUE (OP: >=, >, <=, <, ==; any "
                             "numeric column, e.g. 'symptoms_recall>=0.65'); all notes and a "
                             "random same-size selection run beside it")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds for what is random (subsets, oversampling, recombination, "
                             "random selection, transformer) [1..1000]; a deterministic fit on a "
                             "full set runs once")
    parser.add_argument("--grid", action="store_true",
                        help="run the paper's grid of (real, synthetic) shares")
    parser.add_argument("--controls", default=",".join(CONTROLS),
                        help=f"comma-separated controls among {', '.join(CONTROLS)} (empty: none)")
    parser.add_argument("--use-filter", action="store_true",
                        help="train only on notes that passed the BERTScore filter (needs scores)")
    parser.add_argument("--recall-threshold", type=float, default=0.65,
                        help="filter threshold when the table has no passed_filter column [0..1]")
    parser.add_argument("--precision-threshold", type=float, default=0.7,
                        help="filter threshold when the table has no passed_filter column [0..1]")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=PANEL[0],
                        help="the default classifier (top-level numbers, figures); the panel's dev "
                             "winner by default")
    parser.add_argument("--panel", default=",".join(PANEL),
                        help=f"comma-separated classifiers run beside it for the verdict, among "
                             f"{', '.join(CLASSIFIERS)} (empty: the default classifier only)")
    parser.add_argument("--embedding-encoder", default=EMBEDDED_E5,
                        help="e5-logreg: encoder whose mean-pooled embeddings it uses (local folder "
                             "or embedded:multilingual-e5-small)")
    parser.add_argument("--C", type=float, default=None,
                        help="regularisation of the default classifier; default: its dev-tuned value")
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
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals: 0 = no intervals, else >= 100")
    parser.add_argument("--hard-quantile", type=float, default=0.25,
                        help="hard codes: this quantile of train frequency / of real-only dev accuracy")
    parser.add_argument("--no-figures", action="store_true", help="write numbers only")
    parser.add_argument("--json", action="store_true",
                        help="print the summary and the reproduction rows as one JSON object")
    parser.set_defaults(func=_cli)
