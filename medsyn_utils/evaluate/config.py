"""Parameters of the evaluation stage (notebook 08, ``medsyn evaluate``), typed and checked.

Shaped like the kit's per-stage configs: pydantic v2, unknown names refused, finite numbers in
range, choices as ``Literal``. Notebook 08's parameters cell has the same names and defaults.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from medsyn_utils.core.config import (StageConfig, data_dir_field, field, run_dir_field, seed_field,
                                      zero_or_at_least)
from medsyn_utils.evaluate.corpus import MIN_REFERENCE, REFERENCE_MAX
from medsyn_utils.evaluate.faithfulness import DEFAULT_FUZZY, DEFAULT_SLACK, DEFAULT_THRESHOLD
from medsyn_utils.evaluate.vectors import KINDS as VECTOR_KINDS


class EvaluationConfig(StageConfig):
    """Per-symptom faithfulness, unrequested findings and their summary per model × prior."""

    STAGE: ClassVar[str] = "evaluation"
    NOTEBOOK_ONLY: ClassVar[dict[str, str]] = {"show_notes": "display of the notebook"}
    CLI_ALIASES: ClassVar[dict[str, str]] = {"run_dir": "--out", "input_path": "--in",
                                             "data_dir": "MEDSYN_DATA_DIR"}

    run_dir: str = run_dir_field("run folder: reads scored.parquet, writes "
                                 "evaluation.*, figures/ and the stage record")
    data_dir: str = data_dir_field()
    input_path: str = Field("", description="scored table to evaluate (the kit's scored.parquet "
                            "or a CSV in the published layout); empty means the run folder's")
    detector: Literal["learned", "rule"] = Field(
        "learned", description="learned: match features combined by a model trained on gold "
        "pairs of train visits (its own threshold); rule: the share of a name's words only")
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0.0, le=1.0, description="rule detector: share "
                             "of a symptom name's content words that must stand together")
    slack: int = Field(DEFAULT_SLACK, ge=0, le=50, description="extra tokens a match may span "
                       "beyond the symptom name's own words")
    fuzzy: float = Field(DEFAULT_FUZZY, ge=50.0, le=100.0, description="rapidfuzz ratio for a "
                         "spelling variant of a word of five or more letters; 100 turns it off")
    unrequested: bool = Field(True, description="list knowledge-graph symptoms a note affirms "
                              "that were neither sampled nor in its style example")
    corpus: bool = Field(True, description="add the corpus metrics (evaluate.corpus: realism, "
                         "diversity, privacy, fairness) against real notes of the mirror")
    corpus_reference: Literal["full", "complaints"] = Field(
        "full", description="real notes the corpus metrics compare with: full notes or complaints")
    corpus_embed: Literal[VECTOR_KINDS] = Field(
        "e5", description="text vectors of the corpus metrics: the packaged e5 encoder scoring "
        "uses, read from the embedding cache scoring fills (real notes embedded once per user "
        "cache), or hashed character 3-grams (seconds; surface similarity only, for quick runs)")
    corpus_reference_max: int = Field(
        REFERENCE_MAX, ge=0, le=1_000_000, description="real notes per set (train, held-out) "
        "the corpus metrics compare with: a seeded sample of that many; 0 takes all; at least "
        f"{MIN_REFERENCE} otherwise (bounds the encoder's first pass over the real notes)")
    bootstrap: int = Field(200, ge=0, le=100_000, description="bootstrap resamples for the "
                           "intervals of the summary; 0 gives none")
    seed: int = seed_field("seed of the bootstrap")
    show_notes: int = Field(3, ge=0, le=1000, description="notes shown highlighted in the notebook")

    _reference_large_enough = zero_or_at_least(
        "corpus_reference_max", MIN_REFERENCE, f"0 takes all real notes, else {MIN_REFERENCE} or "
        f"more: the realism reference and its held-out ceiling need 100 notes each")
