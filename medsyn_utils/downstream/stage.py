"""Stage 06 from its config: the classifier's options (tuned on dev when asked), then the study.

:func:`run` is the entry point ``medsyn downstream`` calls with a checked
:class:`~medsyn_utils.downstream.config.DownstreamConfig`; the notebook's cells do the same steps
one by one so a reader sees them.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from medsyn_utils.downstream.config import DownstreamConfig
from medsyn_utils.downstream.study import Study, run_study
from medsyn_utils.downstream.tuning import choose_options


def tfidf_options(config: DownstreamConfig) -> dict[str, Any]:
    """The TF-IDF features of ``tfidf-*`` classifiers (the vocabulary is real train notes only)."""
    return {"min_df": config.min_df, "char_ngrams": (2, 4) if config.char_ngrams else None,
            "max_features": config.max_features or None}


def classifier_options(config: DownstreamConfig) -> dict[str, Any]:
    """The options of the default classifier, as ``run_study`` takes them (``C`` only when
    given: 0 keeps the classifier's dev-tuned value)."""
    if config.classifier == "transformer":
        return {"encoder": config.encoder, "epochs": config.epochs,
                "batch_size": config.batch_size, "learning_rate": config.learning_rate,
                "max_length": config.max_length, "max_steps": config.max_steps}
    chosen = {"C": config.C} if config.C else {}
    if config.classifier == "e5-logreg":
        return {"encoder": config.embedding_encoder, **chosen}
    if config.classifier == "tfidf-logreg":
        return {**tfidf_options(config), "solver": config.logreg_solver, **chosen}
    return {**tfidf_options(config), **chosen}


def panel_options(config: DownstreamConfig) -> dict[str, dict[str, Any]]:
    """The options of each classifier of the panel (their C: the dev-tuned values)."""
    return {"tfidf-svm": tfidf_options(config),
            "tfidf-logreg": {**tfidf_options(config), "solver": config.logreg_solver},
            "e5-logreg": {"encoder": config.embedding_encoder}}


def choose(config: DownstreamConfig) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """The default classifier's options, the record of how they were chosen, and the dev search
    (a table, with ``tune``; else ``None``)."""
    return choose_options(config.classifier, classifier_options(config), tune=config.tune)


def run(config: DownstreamConfig, synthetic: pd.DataFrame | str | os.PathLike[str],
        out_dir: str | os.PathLike[str], *, source: str = "", progress: bool = True,
        chosen: tuple[dict[str, Any], dict[str, Any], Any] | None = None) -> Study:
    """The whole stage: options (a dev search first with ``tune``), the study, its files."""
    options, choice, _ = chosen or choose(config)
    return run_study(synthetic, out_dir, classifier=config.classifier,
                     classifier_options=options, panel=config.panel,
                     panel_options=panel_options(config), select=config.select,
                     seeds=config.seeds, grid=config.grid,
                     controls=config.controls, use_filter=config.use_filter,
                     recall_threshold=config.recall_threshold,
                     precision_threshold=config.precision_threshold,
                     n_bootstrap=config.bootstrap, hard_quantile=config.hard_quantile,
                     models=config.models, priors=config.priors,
                     example_sources=config.example_sources, by_group=config.by_group,
                     seed=config.seed, demo=config.demo, source=source,
                     classifier_choice=choice, progress=progress)


__all__ = ["choose", "classifier_options", "panel_options", "run", "tfidf_options"]
