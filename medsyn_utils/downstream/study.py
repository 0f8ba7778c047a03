"""The whole downstream study in one call (CLI, notebook 06, scripts): select, prepare, run every
setting and control on all selected notes and per model × prior, compare, write.

Writes ``downstream_metrics.json``, ``reproduction.md`` and ``reproduction.csv``; figures are
drawn by :mod:`medsyn_utils.analysis` (the CLI and the notebook call it), not here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.downstream import report
from medsyn_utils.downstream.classifiers import classifier_factory
from medsyn_utils.downstream.experiment import (ExperimentResult, experiment_settings,
                                                lowest_dev_accuracy_codes, rarest_codes, run_settings)
from medsyn_utils.downstream.inputs import load_real, prepare_synthetic, select_rows
from medsyn_utils.downstream.tuning import DEV_CHOICE
from medsyn_utils.score.filter import PAPER_PRECISION, PAPER_RECALL

GROUP_COLUMNS = ("generation_model", "prior")


@dataclass
class Study:
    """What one run of the study produced."""

    metrics: dict[str, Any]
    result: ExperimentResult
    per_code: pd.DataFrame | None
    reproduction: list[dict[str, Any]]
    paths: dict[str, Path] = field(default_factory=dict)


def _groups(prepared: pd.DataFrame) -> list[tuple[dict[str, str], pd.DataFrame]]:
    columns = [c for c in GROUP_COLUMNS if c in prepared.columns]
    if not columns or prepared.empty:
        return []
    labelled = prepared.assign(**{c: prepared[c].fillna("(none)").astype(str) for c in columns})
    groups = [(dict(zip(columns, key if isinstance(key, tuple) else (key,))), part)
              for key, part in labelled.groupby(columns, sort=True)]
    return groups if len(groups) > 1 else []


def run_study(synthetic: pd.DataFrame | str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
              classifier: str = "tfidf-svm", classifier_options: dict[str, Any] | None = None,
              seeds: int = 1, grid: bool = False,
              controls: Sequence[str] = ("oversampled", "class_weighted"),
              use_filter: bool = False, recall_threshold: float = PAPER_RECALL,
              precision_threshold: float = PAPER_PRECISION, n_bootstrap: int = 1000, hard_quantile: float = 0.25,
              models: Sequence[str] = (), priors: Sequence[str] = (),
              example_sources: Sequence[str] = (), by_group: bool = True, seed: int = 0,
              demo: bool = False, source: str = "", classifier_choice: dict[str, Any] | None = None,
              progress: bool = True) -> Study:
    """Run the study and write its files into ``out_dir``; ``demo`` marks made-up input.

    ``classifier_choice``: how the classifier's options were chosen (e.g. a dev search run in
    the notebook); recorded as given, else the documented dev search of the defaults.
    """
    from medsyn_utils.core.artefacts import read_scored_table
    from medsyn_utils.core.provenance import write_json_atomic

    make_model = classifier_factory(classifier, **(classifier_options or {}))  # checked first
    settings = experiment_settings(grid, controls)
    if not isinstance(synthetic, pd.DataFrame):
        source = source or f"file {synthetic}"
        synthetic = read_scored_table(synthetic)
    selected, selection = select_rows(synthetic, models=models, priors=priors,
                                      example_sources=example_sources)
    real = load_real()
    categories = sorted(real["train"]["code"].unique())
    prepared, counts = prepare_synthetic(selected, categories=categories, use_filter=use_filter,
                                         recall_threshold=recall_threshold,
                                         precision_threshold=precision_threshold)
    counts = {**selection, **counts}
    reuse: dict = {}
    result = run_settings(real["train"], real["dev"], real["test"], prepared, settings=settings,
                          seeds=seeds, make_model=make_model, progress=progress, reuse=reuse)
    hard = {"rarest_quartile": rarest_codes(real["train"]["code"], hard_quantile),
            "lowest_dev_accuracy": lowest_dev_accuracy_codes(result, hard_quantile)}
    metrics = report.build_metrics(result, counts, hard=hard, n_bootstrap=n_bootstrap, seed=seed)
    per_code = (pd.DataFrame(metrics["per_code"]["rows"]) if "per_code" in metrics else None)
    rows = [report.reproduction_row(metrics, {"group": "all selected notes"})]
    group_metrics = []
    for group, part in (_groups(prepared) if by_group else []):
        group_counts = {"kept": int(len(part)), "kept_codes": int(part["code"].nunique())}
        try:
            group_result = run_settings(real["train"], real["dev"], real["test"], part,
                                        settings=settings, seeds=seeds, make_model=make_model,
                                        progress=progress, reuse=reuse)
        except ParameterError as error:  # a group too small to train on
            group_metrics.append({**group, "skipped": str(error)})
            continue
        numbers = report.build_metrics(group_result, group_counts, hard=hard,
                                       n_bootstrap=n_bootstrap, seed=seed)
        numbers.pop("per_code", None)
        rows.append(report.reproduction_row(numbers, group))
        group_metrics.append({**group, "synthetic": group_counts, "summary": numbers["summary"],
                              "comparisons": numbers["comparisons"],
                              "skipped_settings": numbers["skipped_settings"]})
    metrics.update(demo=bool(demo), synthetic_source=source or "a table passed in memory",
                   classifier_choice=classifier_choice or {
                       "how": "options as given; the defaults are the documented dev search's winner",
                       "documented_dev_search": DEV_CHOICE},
                   selection={"models": list(models), "priors": list(priors),
                              "example_sources": list(example_sources)},
                   groups=group_metrics)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {report.METRICS_FILE: write_json_atomic(out / report.METRICS_FILE, metrics)}
    notes = ["**DEMO DATA: made-up notes, not model output.**"] if demo else []
    paths.update(report.write_reproduction(rows, out, result.classifier,
                                           notes + [f"Synthetic notes: {metrics['synthetic_source']}."]))
    return Study(metrics=metrics, result=result, per_code=per_code, reproduction=rows, paths=paths)
