"""Each stage's config class (the stage contract), by stage name.

``medsyn run`` checks ``--set`` and YAML values against these before anything runs, and
``medsyn params NAME`` prints them; see :mod:`medsyn_utils.core.config`.
"""

from __future__ import annotations

from medsyn_utils.analysis.config import AnalysisConfig
from medsyn_utils.core.config import StageConfig
from medsyn_utils.downstream.config import DownstreamConfig
from medsyn_utils.evaluate.config import EvaluationConfig
from medsyn_utils.finetune.config import FinetuneConfig
from medsyn_utils.generate.config import GenerationConfig
from medsyn_utils.kg.config import GraphConfig
from medsyn_utils.score.config import ScoringConfig
from medsyn_utils.tasks.config import TasksConfig

CONFIGS: dict[str, type[StageConfig]] = {
    "graph": GraphConfig,
    "tasks": TasksConfig,
    "generation": GenerationConfig,
    "scoring": ScoringConfig,
    "evaluation": EvaluationConfig,
    "analysis": AnalysisConfig,
    "downstream": DownstreamConfig,
    "finetune": FinetuneConfig,
}


def config_for(stage: str) -> type[StageConfig] | None:
    """The config class of a stage (``None`` for a stage without one)."""
    return CONFIGS.get(stage)


__all__ = ["CONFIGS", "config_for"]
