"""Stage 06 (notebook 06, `medsyn downstream`): the ICD-10 classifiers.

The one source of the stage's parameters (see :mod:`medsyn_utils.core.config`): add a field
here and the same name and default in the notebook's parameters cell.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from medsyn_utils.core.config import (StageConfig, data_dir_field, field, run_dir_field, seed_field,
                                      zero_or_at_least)
from medsyn_utils.downstream.classifiers import (CLASSIFIERS, DEFAULT_C, DEFAULT_LOGREG_C,
                                                 DEFAULT_LOGREG_SOLVER, LOGREG_SOLVERS, PANEL)
from medsyn_utils.downstream.embedding import DEFAULT_EMBEDDING_C
from medsyn_utils.downstream.report import MIN_BOOTSTRAP
from medsyn_utils.score.encoders import EMBEDDED_E5
from medsyn_utils.score.filter import PAPER_THRESHOLDS

Classifier = Literal[CLASSIFIERS]


class DownstreamConfig(StageConfig):
    """Parameters of the downstream stage."""

    STAGE: ClassVar[str] = "downstream"
    NOTEBOOK_ONLY: ClassVar[dict[str, str]] = {
        "demo": "the notebook's made-up table; the command takes --synthetic",
        "demo_rows": "size of the notebook's demo table"}
    CLI_ALIASES: ClassVar[dict[str, str]] = {"run_dir": "--out", "synthetic_path": "--synthetic",
                                             "data_dir": "MEDSYN_DATA_DIR"}

    run_dir: str = run_dir_field('run folder: reads scored.parquet, writes downstream_metrics.json, reproduction.md/.csv, figures/downstream/ and the stage record')
    data_dir: str = data_dir_field()
    synthetic_path: str = field("",
        "synthetic notes (scored .parquet or .csv, or the published CSV); empty means the run folder's scored.parquet")
    demo: bool = field(False,
        'no scored table: use a small made-up table (marked DEMO DATA) instead of stopping')
    models: list[str] = field([], 'generation_model values to use; empty means all')
    priors: list[str] = field([], 'prior values to use; empty means all')
    example_sources: list[str] = field([], 'example_source values to use; empty means all')
    by_group: bool = field(True,
        'also run each model × prior separately (rows of reproduction.md)')
    classifier: Classifier = field(PANEL[0],
        'default classifier (top-level numbers, figures): the dev winner of the panel (README, '
        'downstream section)')
    panel: list[Classifier] = field(list(PANEL),
        'classifiers run beside the default for the verdict (each tuned on dev); empty: the '
        'default only')
    embedding_encoder: str = field(EMBEDDED_E5,
        'e5-logreg: encoder of its mean-pooled embeddings (local folder or '
        'embedded:multilingual-e5-small)')
    select: str = field("",
        'keep notes passing COLUMN OP VALUE on any numeric column, e.g. symptom_coverage>0.5 '
        '(OP: >, >=, <, <=, ==); all notes and a random same-size selection run beside it; '
        'empty: no selection')
    tune: bool = field(False,
        'rerun the dev search of the default classifier and use its winner (tfidf-svm: C, '
        'min_df, character n-grams; tfidf-logreg, e5-logreg: C)')
    C: float = field(0.0, "regularisation of the default classifier; 0 means its dev-tuned value "
                     f"(tfidf-logreg {DEFAULT_LOGREG_C:g}, tfidf-svm {DEFAULT_C:g}, e5-logreg "
                     f"{DEFAULT_EMBEDDING_C:g})", ge=0)
    logreg_solver: Literal[LOGREG_SOLVERS] = field(DEFAULT_LOGREG_SOLVER,
        'tfidf-logreg: sgd (one-vs-rest log loss, seconds per fit) or lbfgs (multinomial, '
        '5-10 times slower)')
    min_df: int = field(2,
        'tfidf-*: drop n-grams found in fewer real train notes (chosen on dev)', ge=1)
    char_ngrams: bool = field(True, 'tfidf-*: add character 2-4-grams (chosen on dev)')
    max_features: int = field(0,
        'tfidf-*: vocabulary cap, 0 for none (the vocabulary is real train notes only)', ge=0)
    encoder: str = field("DeepPavlov/rubert-base-cased",
        'transformer only: encoder hub id or local folder')
    seeds: int = field(3,
        'seeds for what is random (subsets, oversampling, recombination, random selection, '
        'transformer); full-set deterministic fits run once', ge=1, le=1000)
    grid: bool = field(False,
        "run the paper's grid of (real share, synthetic share) instead of the three core settings")
    controls: list[Literal["oversampled", "class_weighted", "recombined"]] = field(
        ["oversampled", "class_weighted", "recombined"],
        'controls among oversampled, class_weighted, recombined')
    use_filter: bool = field(False,
        'train only on synthetic notes that passed the BERTScore filter (needs scores)')
    recall_threshold: float = field(PAPER_THRESHOLDS["symptoms_recall"],
        'filter threshold, used only when the table has no passed_filter column', ge=0, le=1)
    precision_threshold: float = field(PAPER_THRESHOLDS["anamnesis_precision"],
        'filter threshold, used only when the table has no passed_filter column', ge=0, le=1)
    bootstrap: int = field(1000, 'bootstrap resamples for the intervals: 0 for no intervals, '
                           f'else {MIN_BOOTSTRAP} or more', ge=0, le=1_000_000)
    hard_quantile: float = field(0.25,
        'hard codes: this quantile of train frequency / of real-only dev accuracy', gt=0, le=1)
    epochs: int = field(3, 'transformer: passes over the training notes', ge=1)
    batch_size: int = field(16, 'transformer: notes per step', ge=1)
    learning_rate: float = field(2e-5, 'transformer: encoder learning rate', gt=0)
    max_length: int = field(128, 'transformer: tokens per note', ge=8)
    max_steps: int = field(0, 'transformer: cap on optimisation steps, 0 for none', ge=0)
    demo_rows: int = field(300, 'rows of the demo table (demo: true only)', ge=10)
    seed: int = seed_field('seed of the demo table and of the bootstrap')

    _enough_resamples = zero_or_at_least(
        "bootstrap", MIN_BOOTSTRAP, f"use 0 for no intervals or {MIN_BOOTSTRAP} or more resamples "
        f"(fewer give an unstable 95 % interval)")


__all__ = ["DownstreamConfig"]
