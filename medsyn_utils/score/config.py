"""Stage 04 (notebook 04, `medsyn score`): BERTScore, checks and the filter.

The one source of the stage's parameters (see :mod:`medsyn_utils.core.config`): add a field
here and the same name and default in the notebook's parameters cell.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from medsyn_utils.core.config import StageConfig, data_dir_field, field, run_dir_field, seed_field
from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5
from medsyn_utils.score.filter import PAPER_THRESHOLDS
from medsyn_utils.score.scorer import PRECISIONS


class ScoringConfig(StageConfig):
    """Parameters of the scoring stage."""

    STAGE: ClassVar[str] = "scoring"
    NOTEBOOK_ONLY: ClassVar[dict[str, str]] = {
        "show_notes": "display of the notebook",
        "demo": "scores real notes as a demo; the command takes --in",
        "demo_size": "size of the notebook's demo"}
    CLI_ALIASES: ClassVar[dict[str, str]] = {"run_dir": "--out (the scored table)",
                                             "input_path": "--in",
                                             "data_dir": "MEDSYN_DATA_DIR"}

    run_dir: str = run_dir_field('run folder: reads generations.jsonl and tasks.parquet, writes scored.parquet, scored.csv and the stage record')
    data_dir: str = data_dir_field()
    input_path: str = field("",
        "table to score (a store .jsonl or a CSV/Parquet in the published layout); empty means the run folder's generations.jsonl")
    demo: bool = field(False,
        'without generations.jsonl: True scores demo_size REAL train notes labelled DEMO DATA; False stops with an error naming the generation stage')
    demo_size: int = field(8, 'notes scored when demo is True', ge=1)
    encoder: str = field(EMBEDDED_E5,
        'BERTScore encoder: the embedded e5 (offline), a local folder or a hub id')
    layer: int = field(DEFAULT_LAYER, 'encoder layer whose token states are compared', ge=1)
    idf: bool = field(False, 'bert-score idf weighting (off in the paper)')
    windowed: bool = field(False,
        'score texts over the encoder limit whole with overlapping windows instead of cutting them')
    batch_size: int = field(64, 'texts per forward pass', ge=1)
    device: str = field("", 'cpu, cuda or cuda:N; empty takes cuda where available')
    precision: Literal[PRECISIONS] = field("auto",
        'encoder precision: auto (default: bf16 on a CPU with AVX512-BF16/AMX, else fp32), fp32 '
        "(bert-score's own numbers), bf16 (mixed: 1.9-2.5x fp32 on CPU, 100 % of filter decisions "
        'as fp32 on 600 notes), int8 or int8-attention (CPU, faster, less exact), fp16 (CUDA)')
    chunk_rows: int = field(256, 'notes per resumable chunk', ge=1)
    engine: Literal['local', 'ray'] = field("local",
        'where scoring runs: this process, or encoder replicas on a Ray cluster (extra cluster); the same table')
    ray_address: str = field("",
        'ray engine: address of a running cluster such as auto or HEAD:6379; empty starts a local Ray')
    actors: int = field(2, 'ray engine: encoder replicas', ge=1)
    gpus_per_actor: float = field(0.0, 'ray engine: GPUs each replica takes; 0 runs on CPU', ge=0)
    cpus_per_actor: float = field(0.0,
        'ray engine: CPUs each replica takes; 0 sizes it from the machine', ge=0)
    recall_threshold: float = field(PAPER_THRESHOLDS["symptoms_recall"],
        'a note passes when symptoms_recall reaches this (paper scale when calibrate is on)', ge=0, le=1)
    precision_threshold: float = field(PAPER_THRESHOLDS["anamnesis_precision"],
        'a note passes when anamnesis_precision exceeds this (paper scale when calibrate is on)', ge=0, le=1)
    calibrate: bool = field(True,
        'map both thresholds to this encoder by percentile on real train notes')
    calibration_size: int = field(100, 'real train notes scored for the calibration', ge=2)
    paper_encoder: str = field("bert-base-multilingual-cased",
        "the paper's encoder, to measure the percentiles where it loads; empty skips it")
    assumed_percentile: float = field(10.0,
        "percentile of real notes used where the paper's encoder cannot be loaded", ge=0, le=100)
    copy_threshold: float = field(0.2,
        'flag notes sharing at least this share of word 8-grams with their example', ge=0, le=1)
    seed: int = seed_field('seed for drawing calibration notes and stand-ins')
    show_notes: int = field(3, 'best and worst notes shown side by side', ge=0)


__all__ = ["ScoringConfig"]
