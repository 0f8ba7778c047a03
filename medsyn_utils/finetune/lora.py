"""LoRA fine-tuning of a causal LM on IFT records (transformers Trainer + peft).

The paper's settings (LoRA r=16, α=16, dropout 0.05 on q/k/v/o; lr 2e-5; cosine schedule) are the
defaults of :class:`LoraSettings`. The loss is computed on the answer only by default: prompt
tokens get the label -100, so the model learns to write the note, not to repeat the instruction.
The adapter folder this writes loads in the generation stage as ``base model + adapter``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.core.provenance import to_json, write_atomic

IGNORE_INDEX = -100
PLAIN_TEMPLATE = "{instruction}\n\n{input}\n\nОтвет:\n"


@dataclass
class LoraSettings:
    """Training settings; defaults follow the MedSyn paper (batch sizes scaled for one device)."""

    rank: int = 16
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    learning_rate: float = 2e-5
    scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    epochs: float = 1.0
    max_steps: int = -1          # > 0 overrides epochs (smoke runs)
    max_length: int = 512
    batch_size: int = 8
    grad_accumulation: int = 32  # 8 × 32 = the paper's global batch of 256
    answer_only: bool = True
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.rank < 1 or self.alpha < 1:
            raise ParameterError(f"LoRA rank and alpha must be ≥ 1 (got {self.rank}, {self.alpha})")
        if not 0 <= self.dropout < 1:
            raise ParameterError(f"LoRA dropout must be in [0, 1) (got {self.dropout})")
        if self.learning_rate <= 0 or self.batch_size < 1 or self.grad_accumulation < 1:
            raise ParameterError("learning_rate must be > 0, batch_size and grad_accumulation ≥ 1")
        if self.max_length < 8:
            raise ParameterError(f"max_length {self.max_length} is too short: use at least 8 tokens")


def prompt_text(record: dict, tokenizer) -> str:
    """The prompt part of a record: the chat template when the tokenizer has one, else plain text."""
    user = record["instruction"].strip()
    if record.get("input"):
        user += "\n\n" + record["input"].strip()
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True)
    return PLAIN_TEMPLATE.format(instruction=record["instruction"].strip(),
                                 input=record.get("input", "").strip())


def tokenize_record(record: dict, tokenizer, max_length: int, answer_only: bool = True) -> dict:
    """Token ids and labels of one record; prompt tokens masked with -100 when ``answer_only``."""
    prompt_ids = tokenizer(prompt_text(record, tokenizer), add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None and not getattr(tokenizer, "chat_template", None):
        prompt_ids = [tokenizer.bos_token_id, *prompt_ids]
    answer_ids = tokenizer(record["output"].strip(), add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        answer_ids = [*answer_ids, tokenizer.eos_token_id]
    input_ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) if answer_only else list(prompt_ids)) + answer_ids
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids),
            "labels": labels[:max_length]}


class PadCollator:
    """Right-pads a batch: pad id for inputs, -100 for labels, 0 for the attention mask."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])
        return {"input_ids": pad("input_ids", self.pad_token_id),
                "attention_mask": pad("attention_mask", 0), "labels": pad("labels", IGNORE_INDEX)}


@dataclass
class FinetuneResult:
    adapter_dir: Path
    log: list[dict]
    seconds: float
    examples: int
    trainable_parameters: int


def finetune(base_model: str, records: Sequence[dict], out_dir: str | Path,
             settings: LoraSettings | None = None, device: str = "auto") -> FinetuneResult:
    """Fine-tune ``base_model`` (any spec the generation stage accepts) with LoRA on ``records``.

    Writes ``<out_dir>/adapter/`` (adapter + tokenizer) and ``<out_dir>/training_log.json``.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from medsyn_utils.generate import models
    settings = settings or LoraSettings()
    settings.check()
    if not records:
        raise ParameterError("no IFT records to train on: run the IFT export first")
    spec = models.resolve_model(base_model)
    tokenizer = models.load_tokenizer(spec)
    tokenizer.padding_side = "right"
    examples = [tokenize_record(r, tokenizer, settings.max_length, settings.answer_only)
                for r in records]
    examples = [e for e in examples if any(label != IGNORE_INDEX for label in e["labels"])]
    if not examples:
        raise ParameterError(f"every record is longer than max_length={settings.max_length} "
                             f"before its answer starts: raise max_length")
    resolved = models.pick_device(device)
    torch.manual_seed(settings.seed)
    model = AutoModelForCausalLM.from_pretrained(
        models.model_path(spec), dtype=models.pick_dtype("auto", resolved))
    lora = LoraConfig(task_type="CAUSAL_LM", r=settings.rank, lora_alpha=settings.alpha,
                      lora_dropout=settings.dropout, target_modules=list(settings.target_modules))
    try:
        model = get_peft_model(model, lora)
    except ValueError as error:
        raise ParameterError(f"target_modules {list(settings.target_modules)} not found in "
                             f"{spec.model_id}: {str(error).splitlines()[0][:160]}") from None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arguments = TrainingArguments(
        output_dir=str(out_dir / "trainer"), per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accumulation,
        learning_rate=settings.learning_rate, lr_scheduler_type=settings.scheduler,
        warmup_steps=settings.warmup_ratio, num_train_epochs=settings.epochs,
        max_steps=settings.max_steps, logging_steps=1, save_strategy="no", report_to=[],
        seed=settings.seed, data_seed=settings.seed, remove_unused_columns=False,
        use_cpu=resolved == "cpu", bf16=resolved == "cuda" and torch.cuda.is_bf16_supported(),
        disable_tqdm=False, **settings.extra)
    trainer = Trainer(model=model, args=arguments, train_dataset=examples,
                      data_collator=PadCollator(tokenizer.pad_token_id))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    adapter_dir = out_dir / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(adapter_dir)
    log = [entry for entry in trainer.state.log_history if "loss" in entry]
    write_atomic(out_dir / "training_log.json", to_json({
        "base_model": spec.record(), "settings": asdict(settings), "examples": len(examples),
        "trainable_parameters": trainable, "seconds": seconds, "log": log}))
    return FinetuneResult(adapter_dir, log, seconds, len(examples), trainable)


def read_records(path: str | Path, limit: int = 0) -> list[dict]:
    """IFT records from a JSONL file (the first ``limit`` when > 0)."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
                if limit and len(records) >= limit:
                    break
    return records
