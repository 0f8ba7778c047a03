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


def classifier_options(config: DownstreamConfig) -> dict[str, Any]:
    """The options of the configured classifier, as ``run_study`` takes them."""
    if config.classifier == "transformer":
        return {"encoder": config.encoder, "epochs": config.epochs,
                "batch_size": config.batch_size, "learning_rate": config.learning_rate,
                "max_length": config.max_length, "max_steps": config.max_steps}
    return {"C": config.C, "min_df": config.min_df,
            "char_ngrams": (2, 4) if config.char_ngrams else None,
            "max_features": config.max_features or None}


def run(config: DownstreamConfig, synthetic: pd.DataFrame | str | os.PathLike[str],
        out_dir: str | os.PathLike[str], *, source: str = "", progress: bool = True) -> Study:
    """The whole stage: options (a dev search first with ``tune``), the study, its files."""
    options, choice, _ = choose_options(config.classifier, classifier_options(config),
                                        tune=config.tune)
    return run_study(synthetic, out_dir, classifier=config.classifier,
                     classifier_options=options, seeds=config.seeds, grid=config.grid,
                     controls=config.controls, use_filter=config.use_filter,
                     recall_threshold=config.recall_threshold,
                     precision_threshold=config.precision_threshold,
                     n_bootstrap=config.bootstrap, hard_quantile=config.hard_quantile,
                     models=config.models, priors=config.priors,
                     example_sources=config.example_sources, by_group=config.by_group,
                     seed=config.seed, demo=config.demo, source=source,
                     classifier_choice=choice, progress=progress)


__all__ = ["classifier_options", "run"]
