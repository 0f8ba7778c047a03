"""LoRA fine-tuning: answer-only labels, a few CPU steps, the adapter in the generation stage."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medsyn_utils.finetune import lora as finetune

from medsyn_utils.generate.stage import generate_store

from medsyn_utils.generate import store
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.testing.tiny import train_tokenizer

RECORDS = [
    {"instruction": "Напиши жалобы пациента.", "input": "Симптомы: кашель, слабость",
     "output": "Жалобы на кашель и слабость в течение трёх дней."},
    {"instruction": "Продолжи запись.", "input": "Жалобы на головную боль,",
     "output": "головокружение, шум в ушах, давление до 160/100."},
    {"instruction": "Опиши жалобы.", "input": "Диагноз: гипертензия",
     "output": "Давление повышается до 160/100, одышка при нагрузке."},
    {"instruction": "Напиши анамнез.", "input": "",
     "output": "Болеет около недели, лечился самостоятельно, без эффекта."},
]


@pytest.mark.parametrize("chat", [True, False])
def test_answer_only_masks_the_prompt(chat):
    tokenizer = train_tokenizer()
    if not chat:
        tokenizer.chat_template = None
    record = RECORDS[0]
    item = finetune.tokenize_record(record, tokenizer, max_length=512, answer_only=True)
    prompt_ids = tokenizer(finetune.prompt_text(record, tokenizer), add_special_tokens=False)["input_ids"]
    n_prompt = len(prompt_ids) + (0 if chat else 1)  # plain form starts with <s>
    assert item["labels"][:n_prompt] == [finetune.IGNORE_INDEX] * n_prompt
    assert item["labels"][n_prompt:] == item["input_ids"][n_prompt:]
    assert item["input_ids"][-1] == tokenizer.eos_token_id
    answer = tokenizer.decode(item["input_ids"][n_prompt:], skip_special_tokens=True)
    assert answer == record["output"]
    full = finetune.tokenize_record(record, tokenizer, max_length=512, answer_only=False)
    assert full["labels"] == full["input_ids"]


def test_truncation_and_padding():
    tokenizer = train_tokenizer()
    item = finetune.tokenize_record(RECORDS[1], tokenizer, max_length=10)
    assert len(item["input_ids"]) == len(item["labels"]) == 10
    batch = finetune.PadCollator(tokenizer.pad_token_id)(
        [finetune.tokenize_record(r, tokenizer, 64) for r in RECORDS[:2]])
    assert batch["input_ids"].shape == batch["labels"].shape
    assert (batch["labels"][batch["attention_mask"] == 0] == finetune.IGNORE_INDEX).all()


def test_bad_settings():
    with pytest.raises(ParameterError, match="rank"):
        finetune.LoraSettings(rank=0).check()
    with pytest.raises(ParameterError, match="dropout"):
        finetune.LoraSettings(dropout=1.5).check()


def _tasks() -> pd.DataFrame:
    return pd.DataFrame({"task_id": ["t1", "t2"],
                         "user_prompt": ["Напиши жалобы пациента.\n\nСимптомы: кашель",
                                         "Опиши жалобы.\n\nДиагноз: гипертензия"],
                         "system_prompt": ["", ""]})


def test_tiny_model_fine_tunes_and_its_adapter_changes_generation(tiny_lm_dir, tmp_path):
    settings = finetune.LoraSettings(max_steps=6, batch_size=4, grad_accumulation=1,
                                     learning_rate=5e-2, max_length=96, warmup_ratio=0.0)
    result = finetune.finetune(str(tiny_lm_dir), RECORDS, tmp_path / "ft", settings, device="cpu")
    assert (result.adapter_dir / "adapter_config.json").is_file()
    assert len(result.log) == 6 and result.trainable_parameters > 0
    assert result.log[-1]["loss"] < result.log[0]["loss"]
    log = json.loads((tmp_path / "ft" / "training_log.json").read_text())
    assert log["settings"]["rank"] == 16 and log["examples"] == 4
    outputs = {}
    for name, adapter in (("base", None), ("tuned", str(result.adapter_dir))):
        path = tmp_path / f"{name}.jsonl"
        generate_store(_tasks(), path, model=str(tiny_lm_dir), batch_size=2,
                                  max_new_tokens=12, temperature=0.0, device="cpu",
                                  prompt_form="chat", progress=False, adapter=adapter)
        records = store.read_records(path)
        outputs[name] = [r["response"] for r in sorted(records, key=lambda r: r["task_id"])]
        assert all((r.get("adapter") or None) == adapter for r in records)
    assert outputs["base"] != outputs["tuned"]
