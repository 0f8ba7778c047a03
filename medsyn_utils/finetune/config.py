"""Stage 07 (notebook 07): LoRA fine-tuning on instruction records.

The one source of the stage's parameters (see :mod:`medsyn_utils.core.config`): add a field
here and the same name and default in the notebook's parameters cell.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from medsyn_utils.core.config import StageConfig, data_dir_field, field, run_dir_field, seed_field
from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5


class FinetuneConfig(StageConfig):
    """Parameters of the finetune stage."""

    STAGE: ClassVar[str] = "finetune"
    CLI_ALIASES: ClassVar[dict[str, str]] = {"run_dir": "medsyn run --out",
                                             "data_dir": "MEDSYN_DATA_DIR"}

    run_dir: str = run_dir_field("run folder for the stage's artefacts (relative to the project root)")
    data_dir: str = data_dir_field()
    base_model: str = field("embedded:gemma-3-270m",
        'base causal LM: embedded:gemma-3-270m, a hub id or a local folder')
    ift_path: str = field("",
        'IFT JSONL to train on (with its .card.json); empty exports one into the run folder')
    synthetic: bool = field(True,
        'join the filtered synthetic notes of stage 04 to the export; False trains on real notes only')
    scored_path: str = field("",
        'scored dataset whose passing notes join the export (tasks.parquet and generations.jsonl beside it); empty uses <run_dir>/scored.parquet')
    max_records: int = field(64, 'IFT records to train on (0 for all)', ge=0, le=1000000)
    lora_rank: int = field(16, 'LoRA rank r', ge=1, le=256)
    lora_alpha: int = field(16, 'LoRA alpha', ge=1, le=512)
    lora_dropout: float = field(0.05, 'LoRA dropout', ge=0, le=0.9)
    target_modules: list[str] = field(["q_proj",
        "k_proj", "v_proj", "o_proj"], 'modules that get LoRA adapters')
    learning_rate: float = field(2e-4,
        'peak learning rate (the paper used 2e-5 with a global batch of 256)', gt=0)
    scheduler: Literal['cosine', 'linear', 'constant'] = field("cosine", 'learning-rate schedule')
    epochs: float = field(1.0, 'passes over the records (ignored when max_steps > 0)', gt=0)
    max_steps: int = field(8,
        'optimizer steps; > 0 overrides epochs (CPU smoke runs)', ge=-1, le=1000000)
    max_length: int = field(256, 'tokens per record (prompt + answer)', ge=16, le=8192)
    batch_size: int = field(2, 'records per device batch', ge=1, le=1024)
    grad_accumulation: int = field(1, 'batches per optimizer step', ge=1, le=1024)
    answer_only: bool = field(True, 'compute the loss on the answer only (prompt tokens masked)')
    seed: int = seed_field('seed for the export wordings, the order and training')
    eval_tasks: int = field(4,
        'held-out tasks (dev-split style examples) generated with base and fine-tuned model (0 skips the comparison)', ge=0, le=10000)
    eval_max_new_tokens: int = field(48, 'new tokens per note in the comparison', ge=1, le=4096)
    encoder: str = field(EMBEDDED_E5, 'BERTScore encoder for the comparison')
    encoder_layer: int = field(DEFAULT_LAYER, 'encoder layer for BERTScore', ge=1, le=48)
    device: str = field("auto", 'auto, cpu or cuda')


__all__ = ["FinetuneConfig"]
