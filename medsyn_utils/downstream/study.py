"""The whole downstream study in one call (CLI, notebook 06, scripts): select, prepare, run every
setting and control with every classifier of the panel, on all selected notes and per model ×
prior, compare, give the verdict, write.

Writes ``downstream_metrics.json``, ``reproduction.md`` and ``reproduction.csv``; figures are
drawn by :mod:`medsyn_utils.analysis` (the CLI and the notebook call it), not here.

The panel (:data:`~medsyn_utils.downstream.classifiers.PANEL`, each member tuned on dev only)
runs every setting; the verdict of a difference is "helps" only when its interval excludes zero
above for every classifier (see :func:`medsyn_utils.downstream.report.verdict`). The top-level
numbers of the metrics file are the default classifier's (the first of the panel).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.downstream import report
from medsyn_utils.downstream.classifiers import PANEL, classifier_factory
from medsyn_utils.downstream.experiment import (CONTROLS, ExperimentResult, Setting, add_setting,
                                                experiment_settings, lowest_dev_accuracy_codes,
                                                rarest_codes, run_settings)
from medsyn_utils.downstream.inputs import (load_real, prepare_synthetic, require_notes,
                                            select_mask, select_rows)
from medsyn_utils.downstream.tuning import DEV_CHOICE, PANEL_DEV
from medsyn_utils.score.filter import PAPER_PRECISION, PAPER_RECALL

GROUP_COLUMNS = ("generation_model", "prior")
DEFAULT_CONTROLS = CONTROLS  # oversampled, class_weighted, recombined: all on by default
REAL_SYNTHETIC = Setting("real_synthetic", 1.0, 1.0)


@dataclass
class Study:
    """What one run of the study produced (``result``/``per_code``: the default classifier's)."""

    metrics: dict[str, Any]
    result: ExperimentResult
    per_code: pd.DataFrame | None
    reproduction: list[dict[str, Any]]
    paths: dict[str, Path] = field(default_factory=dict)
    results: dict[str, ExperimentResult] = field(default_factory=dict)  # per classifier


def _groups(prepared: pd.DataFrame) -> list[tuple[dict[str, str], pd.DataFrame]]:
    columns = [c for c in GROUP_COLUMNS if c in prepared.columns]
    if not columns or prepared.empty:
        return []
    labelled = prepared.assign(**{c: prepared[c].fillna("(none)").astype(str) for c in columns})
    groups = [(dict(zip(columns, key if isinstance(key, tuple) else (key,))), part)
              for key, part in labelled.groupby(columns, sort=True)]
    return groups if len(groups) > 1 else []


def check_numbers(*, seeds: int, n_bootstrap: int, hard_quantile: float, recall_threshold: float,
                  precision_threshold: float) -> int:
    """Every number of the study checked by the stage's config (its one declaration of ranges)
    before any data or model loads; the bootstrap count."""
    from medsyn_utils.downstream.config import DownstreamConfig

    return DownstreamConfig.check(seeds=seeds, bootstrap=n_bootstrap, hard_quantile=hard_quantile,
                                  recall_threshold=recall_threshold,
                                  precision_threshold=precision_threshold).bootstrap


def _panel(classifier: str, classifier_options: dict[str, Any] | None, panel: Sequence[str],
           panel_options: dict[str, dict[str, Any]] | None) -> dict[str, Callable]:
    """``name → seed → classifier``: the default first, then the other members of the panel."""
    names = [classifier] + [p for p in panel if p != classifier]
    options = {name: dict((panel_options or {}).get(name, {})) for name in names}
    options[classifier].update(classifier_options or {})
    return {name: classifier_factory(name, **options[name]) for name in names}  # checked first


def _run_one(real: dict[str, pd.DataFrame], notes: pd.DataFrame, everything: pd.DataFrame | None,
             settings: Sequence[Setting], seeds: int, factory: Callable, reuse: dict, progress: bool,
             seed: int) -> ExperimentResult:
    """All settings for one classifier; with a selection, also all notes and random same-size."""
    result = run_settings(real["train"], real["dev"], real["test"], notes, settings=settings,
                          seeds=seeds, make_model=factory, progress=progress, reuse=reuse)
    if everything is not None and len(everything) > len(notes):
        full = run_settings(real["train"], real["dev"], real["test"], everything,
                            settings=[REAL_SYNTHETIC], seeds=1, make_model=factory,
                            progress=progress, reuse=reuse)
        add_setting(result, full, "real_synthetic", "real_synthetic_unselected")
        rng = np.random.default_rng(seed + 7_919)
        for s in range(seeds):
            drawn = everything.iloc[np.sort(rng.choice(len(everything), size=len(notes), replace=False))]
            random = run_settings(real["train"], real["dev"], real["test"], drawn,
                                  settings=[REAL_SYNTHETIC], seeds=[s], make_model=factory,
                                  progress=progress, reuse=reuse)
            add_setting(result, random, "real_synthetic", "real_synthetic_random")
    return result


def run_study(synthetic: pd.DataFrame | str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
              classifier: str = PANEL[0], classifier_options: dict[str, Any] | None = None,
              panel: Sequence[str] = PANEL, panel_options: dict[str, dict[str, Any]] | None = None,
              seeds: int = 3, grid: bool = False, controls: Sequence[str] = DEFAULT_CONTROLS,
              use_filter: bool = False, recall_threshold: float = PAPER_RECALL,
              precision_threshold: float = PAPER_PRECISION, select: str = "", n_bootstrap: int = 1000,
              hard_quantile: float = 0.25, models: Sequence[str] = (), priors: Sequence[str] = (),
              example_sources: Sequence[str] = (), by_group: bool = True, seed: int = 0,
              demo: bool = False, source: str = "", classifier_choice: dict[str, Any] | None = None,
              progress: bool = True) -> Study:
    """Run the study and write its files into ``out_dir``; ``demo`` marks made-up input.

    ``select`` (``'COLUMN>=VALUE'``, also ``>``, ``<=``, ``<``, ``==``) keeps the notes that pass
    for real + synthetic and adds two settings beside it at the same number of notes or more:
    all notes (no selection) and a random selection of the same size (one per seed).
    ``classifier_choice``: how the classifier's options were chosen (e.g. a dev search run in
    the notebook); recorded as given, else the documented dev search of the defaults.
    """
    from medsyn_utils.core.artefacts import read_scored_table
    from medsyn_utils.core.provenance import write_json_atomic

    n_bootstrap = check_numbers(seeds=seeds, n_bootstrap=n_bootstrap, hard_quantile=hard_quantile,
                                recall_threshold=recall_threshold,
                                precision_threshold=precision_threshold)
    factories = _panel(classifier, classifier_options, panel, panel_options)
    settings = experiment_settings(grid, controls)
    if not isinstance(synthetic, pd.DataFrame):
        source = source or f"file {synthetic}"
        synthetic = read_scored_table(synthetic)
    selected, selection = select_rows(synthetic, models=models, priors=priors,
                                      example_sources=example_sources)
    if select:
        selected = selected.assign(selected=select_mask(selected, select))
    real = load_real()
    categories = sorted(real["train"]["code"].unique())
    prepared, counts = prepare_synthetic(selected, categories=categories, use_filter=use_filter,
                                         recall_threshold=recall_threshold,
                                         precision_threshold=precision_threshold)
    counts = {**selection, **counts}
    require_notes(counts, counts["kept"])
    everything = None
    if select:
        counts["select"] = select
        counts["kept_selected"] = int(prepared["selected"].sum())
        require_notes(counts, counts["kept_selected"], f"synthetic notes passing select {select!r}")
        everything, prepared = prepared, prepared[prepared["selected"]].reset_index(drop=True)

    results: dict[str, ExperimentResult] = {}
    reuses: dict[str, dict] = {}
    feature_cache: dict = {}  # TF-IDF members with the same options transform the real notes once
    for name, factory in factories.items():
        reuses[name] = {"feature_cache": feature_cache}
        results[name] = _run_one(real, prepared, everything, settings, seeds, factory,
                                 reuses[name], progress, seed)
    main_name = next(iter(factories))
    main = results[main_name]
    hard = {"rarest_quartile": rarest_codes(real["train"]["code"], hard_quantile),
            "lowest_dev_accuracy": lowest_dev_accuracy_codes(main, hard_quantile)}
    per_classifier = {name: report.build_metrics(r, counts, hard=hard, n_bootstrap=n_bootstrap,
                                                 seed=seed) for name, r in results.items()}
    metrics = per_classifier[main_name]
    per_code = pd.DataFrame(metrics["per_code"]["rows"]) if "per_code" in metrics else None
    top = {"group": "all selected notes"}
    rows = [report.reproduction_row(m, top) for m in per_classifier.values()]
    verdicts = {"all selected notes": report.group_verdicts(rows)}
    group_metrics = []
    for group, part in (_groups(prepared) if by_group else []):
        group_counts = {"kept": int(len(part)), "kept_codes": int(part["code"].nunique())}
        members = {}
        for name, factory in factories.items():
            try:
                group_result = run_settings(real["train"], real["dev"], real["test"], part,
                                            settings=settings, seeds=seeds, make_model=factory,
                                            progress=progress, reuse=reuses[name])
            except ParameterError as error:  # a group too small to train on
                members[name] = {"skipped": str(error)}
                continue
            numbers = report.build_metrics(group_result, group_counts, hard=hard,
                                           n_bootstrap=n_bootstrap, seed=seed)
            numbers.pop("per_code", None)
            members[name] = numbers
        ran = {n: m for n, m in members.items() if "skipped" not in m}
        group_rows = [report.reproduction_row(m, group) for m in ran.values()]
        rows += group_rows
        label = " / ".join(group.values())
        verdicts[label] = report.group_verdicts(group_rows)
        first = next(iter(ran.values()), {})
        group_metrics.append({**group, "synthetic": group_counts,
                              "summary": first.get("summary", {}),
                              "comparisons": first.get("comparisons", []),
                              "skipped_settings": first.get("skipped_settings", {}),
                              "panel": {n: {k: m.get(k) for k in ("classifier", "settings",
                                                                  "comparisons", "skipped")}
                                        for n, m in members.items()}})
    metrics.update(
        demo=bool(demo), synthetic_source=source or "a table passed in memory",
        classifier_choice=classifier_choice or {
            "how": "the default is the panel's dev winner (real-only dev acc@1, then acc@3); "
                   "options of each member chosen on dev",
            "documented_dev_search": DEV_CHOICE, "panel_dev": PANEL_DEV},
        panel={name: {"classifier": m["classifier"], "settings": m["settings"],
                      "comparisons": m["comparisons"], "skipped_settings": m["skipped_settings"],
                      "dev_real_only": next((e["dev"] for e in m["settings"]
                                             if e["setting"] == "real_only"), None)}
               for name, m in per_classifier.items()},
        verdicts=verdicts, selection={"models": list(models), "priors": list(priors),
                                      "example_sources": list(example_sources), "select": select},
        groups=group_metrics, seeds=int(seeds))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {report.METRICS_FILE: write_json_atomic(out / report.METRICS_FILE, metrics)}
    notes = ["**DEMO DATA: made-up notes, not model output.**"] if demo else []
    if select:
        notes.append(f"Selection: real + synthetic uses the {counts['kept_selected']} notes passing "
                     f"`{select}`; beside it all {counts['kept']} notes and a random selection of "
                     f"the same size ({seeds} seed(s)).")
    if not n_bootstrap:
        notes.append("No intervals: bootstrap 0 was asked for, so nothing is claimed.")
    paths.update(report.write_reproduction(rows, out, main.classifier,
                                           notes + [f"Synthetic notes: {metrics['synthetic_source']}."]))
    return Study(metrics=metrics, result=main, per_code=per_code, reproduction=rows, paths=paths,
                 results=results)
