"""The four timed parts of ``medsyn bench gpu``, each on random-weight models of a given shape.

Every part is ``part(shape, device, work, figures)``: ``shape`` holds its sizes (the real ones on
CUDA, tiny ones for the CPU dry run; see ``gpu.SHAPES``), ``work`` a scratch folder, and
``figures`` is filled as the part goes, so a part stopped at its time limit keeps what it measured.
The kit's own entry points are imported in :func:`kit` alone, at call time: when a module moves,
only that function changes.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np

from medsyn_utils.testing.tiny import SENTENCES, train_tokenizer

SYSTEM_PROMPT = "Ты врач-терапевт. Пиши записи приёма на русском языке."


def kit() -> SimpleNamespace:
    """The kit's public entry points that the parts time."""
    from medsyn_utils.bench.generation import gpu_sweep
    from medsyn_utils.finetune.lora import LoraSettings, finetune
    from medsyn_utils.generate.backends import make_backend
    from medsyn_utils.generate.stage import generate_store
    from medsyn_utils.score.scorer import NoteScorer

    return SimpleNamespace(gpu_sweep=gpu_sweep, generate_store=generate_store,
                           make_backend=make_backend, NoteScorer=NoteScorer,
                           finetune=finetune, LoraSettings=LoraSettings)


# ------------------------------------------------------------------ random models and texts

def causal_lm_folder(work: Path, shape: Mapping[str, int], dtype: str, device: str) -> Path:
    """A random-weight Llama of ``shape`` saved once under ``work`` (parts 2 and 4 share it).

    Its tokenizer is the tiny test tokenizer padded with plain added tokens up to the model's
    vocabulary, so every sampled id decodes to text and the output layer has its real size.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = work / "causal-lm"
    if (folder / "tokenizer.json").is_file():  # written last: the folder is complete
        return folder
    tokenizer = train_tokenizer(vocab_size=min(shape["vocab_size"], 2000), model_max_length=4096)
    tokenizer.add_tokens([f"w{i}" for i in range(shape["vocab_size"] - len(tokenizer))])
    config = LlamaConfig(**shape, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def encoder_folder(work: Path, shape: Mapping[str, int]) -> Path:
    """A random-weight BERT of ``shape`` (fp32, as the scorer loads it) with the tiny tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    folder = work / "encoder"
    tokenizer = train_tokenizer(kind="encoder", model_max_length=shape["max_position_embeddings"])
    torch.manual_seed(0)
    BertModel(BertConfig(**shape, pad_token_id=tokenizer.pad_token_id)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def clinical_text(rng: np.random.Generator, tokenizer, tokens: int, label: str) -> str:
    """A unique note-like text of about ``tokens`` tokens: shuffled test sentences after a label."""
    parts, count = [label], len(tokenizer(label)["input_ids"])
    while True:
        sentence = SENTENCES[int(rng.integers(len(SENTENCES)))]
        count += len(tokenizer(" " + sentence, add_special_tokens=False)["input_ids"])
        if count > tokens:
            return " ".join(parts)
        parts.append(sentence)


def symptom_string(rng: np.random.Generator) -> str:
    """2-5 symptom phrases joined by ", ", as the task table stores them."""
    clauses = [c.strip(" .") for s in SENTENCES for c in s.split(",") if c.strip(" .")]
    picks = rng.choice(len(clauses), size=int(rng.integers(2, 6)), replace=False)
    return ", ".join(clauses[i] for i in picks)


# ------------------------------------------------------------------ 1. decode sweep

def decode_sweep(shape: Mapping[str, Any], device: str, work: Path, figures: dict) -> None:
    """The 7B-shaped decode sweep of ``medsyn bench generation --gpu-sweep``, reused as it is."""
    args = SimpleNamespace(sweep_batches=shape["batches"], sweep_prompt_tokens=shape["prompt_tokens"],
                           sweep_new_tokens=shape["new_tokens"], bandwidth_gbs=shape["bandwidth_gbs"])
    figures.update(kit().gpu_sweep(args, shape=shape["model"], device=device))


# ------------------------------------------------------------------ 2. generation

class OomAbove:
    """Stands in for ``model.generate``: raises ``torch.OutOfMemoryError`` for more than ``rows``
    rows, as a GPU too small for the batch would, so that the kit's batch halving runs."""

    def __init__(self, model, rows: int) -> None:
        self.generate, self.rows, self.raised = model.generate, rows, 0
        model.generate = self

    def __call__(self, *args: Any, **kwargs: Any):
        import torch

        if kwargs["input_ids"].shape[0] > self.rows:
            self.raised += 1
            raise torch.OutOfMemoryError(f"injected by medsyn bench gpu above {self.rows} rows")
        return self.generate(*args, **kwargs)


def generation(shape: Mapping[str, Any], device: str, work: Path, figures: dict) -> None:
    """``generate_store`` on a 1B-shaped model through the transformers backend, run-like.

    Decoding as ``params/gpu.yaml`` (chat prompts, sampling); ``batch_size`` asked twice the size
    that "fits", so the first batch runs out of memory once and the rest go at the halved size.
    Every note is forced to ``max_new_tokens`` (random weights rarely stop; the work is fixed).
    """
    import pandas as pd

    k = kit()
    folder = causal_lm_folder(work, shape["model"], shape["dtype"], device)
    backend = k.make_backend("transformers", str(folder), device=device, dtype=shape["dtype"],
                            prompt_form="chat")
    run = shape["run"]
    fits, tokens = run["batch_size"], run["max_new_tokens"]
    n = shape["batches"] * fits
    rng = np.random.default_rng(0)
    prompts = [clinical_text(rng, backend.tokenizer, int(rng.integers(40, shape["prompt_tokens"])),
                             f"Задача {i}. Напиши запись приёма. Пример:") for i in range(n)]
    tasks = pd.DataFrame({"task_id": [f"g{i:05d}" for i in range(n)],
                          "system_prompt": SYSTEM_PROMPT, "user_prompt": prompts})
    guard = OomAbove(backend.model, fits)
    decoding = {key: run[key] for key in ("temperature", "top_p", "repetition_penalty")}
    report = k.generate_store(tasks, work / "generations.jsonl", backend=backend,
                              batch_size=2 * fits, max_new_tokens=tokens, min_new_tokens=tokens,
                              seed=0, progress=False, **decoding)
    figures.update({
        "model": f"Llama {shape['model']['num_hidden_layers']} layers × "
                 f"{shape['model']['hidden_size']}, random weights, {shape['dtype']}",
        "tasks": n, "notes": report.generated, "batch_size_asked": 2 * fits,
        "batch_size_used": report.batch_size_used, "injected_ooms": guard.raised,
        "max_new_tokens": tokens, "prompt_tokens": report.prompt_tokens,
        "completion_tokens": report.completion_tokens,
        "notes_per_s": round(report.generated / report.seconds, 3),
        "tokens_per_s": round(report.tokens_per_s, 1), "seconds": round(report.seconds, 3),
        "load_seconds": round(report.load_seconds, 3), **decoding})


# ------------------------------------------------------------------ 3. scoring

def scoring(shape: Mapping[str, Any], device: str, work: Path, figures: dict) -> None:
    """The one-pass scorer (fp32, then fp16) against two ``bert_score.score`` calls (fp32).

    Random-weight encoder of ``bert-base-multilingual-cased`` shape; every note and example is a
    distinct text near the encoder's full length. Timings include loading the encoder on both
    sides, as in ``medsyn bench scoring``.
    """
    import bert_score
    import torch

    k = kit()
    folder = encoder_folder(work, shape["encoder"])
    layer, n = shape["layer"], shape["pairs"]
    scorer = k.NoteScorer(str(folder), layer, device=device)  # warm-up: CUDA context, kernels
    rng = np.random.default_rng(1)
    notes = [clinical_text(rng, scorer.tokenizer, shape["text_tokens"], f"Запись {i}.")
             for i in range(n)]
    examples = [clinical_text(rng, scorer.tokenizer, shape["text_tokens"], f"Пример {i}.")
                for i in range(n)]
    symptoms = [symptom_string(rng) for _ in range(n)]
    scorer.score(notes[:8], symptoms[:8], examples[:8], progress=False)
    del scorer
    sizes = shape["encoder"]
    figures.update({"pairs": n, "layer": layer,
                    "encoder": f"BERT {sizes['num_hidden_layers']} layers × {sizes['hidden_size']}, "
                               f"vocabulary {sizes['vocab_size']}, random weights"})

    def synced(call):
        start = time.perf_counter()
        values = call()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, values

    def two_calls():
        _, recall, _ = bert_score.score(notes, symptoms, model_type=str(folder), num_layers=layer,
                                        batch_size=64, device=device)
        precision, _, _ = bert_score.score(notes, examples, model_type=str(folder),
                                           num_layers=layer, batch_size=64, device=device)
        return np.stack([recall.numpy(), precision.numpy()], axis=1)

    seconds, baseline = synced(two_calls)
    figures.update(two_call_seconds=round(seconds, 3), two_call_pairs_per_s=round(n / seconds, 2))
    for precision_name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        def one_pass(dtype=dtype):
            scorer = k.NoteScorer(str(folder), layer, device=device)
            scorer.model.to(dtype)  # the scorer has no dtype option: convert the loaded encoder
            frame = scorer.score(notes, symptoms, examples, progress=False)
            figures["mean_note_tokens"] = round(float(frame["note_tokens"].mean()), 1)
            return frame[["symptoms_recall", "anamnesis_precision"]].to_numpy()

        seconds, values = synced(one_pass)
        figures.update({f"{precision_name}_seconds": round(seconds, 3),
                        f"{precision_name}_pairs_per_s": round(n / seconds, 2),
                        f"{precision_name}_speedup": round(figures["two_call_seconds"] / seconds, 2),
                        f"{precision_name}_max_abs_difference": float(np.abs(values - baseline).max())})


# ------------------------------------------------------------------ 4. LoRA

def lora(shape: Mapping[str, Any], device: str, work: Path, figures: dict) -> None:
    """The fine-tuning stage's trainer on the 1B-shaped model: one warm-up step, then timed steps.

    Records are long enough to fill ``max_length``; a step is one optimizer step of
    ``batch_size × grad_accumulation`` sequences (the paper's global batch is 8 × 32 = 256).
    """
    from transformers import AutoTokenizer

    k = kit()
    folder = causal_lm_folder(work, shape["model"], shape["dtype"], device)
    rng = np.random.default_rng(2)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    records = [{"instruction": "Напиши запись приёма пациента.", "input": symptom_string(rng),
                "output": clinical_text(rng, tokenizer, shape["max_length"], f"Запись {i}.")}
               for i in range(shape["batch_size"] * shape["grad_accumulation"])]
    sizes = {key: shape[key] for key in ("batch_size", "grad_accumulation", "max_length")}
    start = time.perf_counter()
    k.finetune(str(folder), records, work / "lora-warmup", k.LoraSettings(max_steps=1, **sizes),
               device=device)
    figures["warmup_seconds"] = round(time.perf_counter() - start, 3)
    steps = shape["steps"]
    result = k.finetune(str(folder), records, work / "lora", k.LoraSettings(max_steps=steps, **sizes),
                        device=device)
    sequences = shape["batch_size"] * shape["grad_accumulation"]
    figures.update({"model": f"Llama {shape['model']['num_hidden_layers']} layers × "
                             f"{shape['model']['hidden_size']}, random weights",
                    "rank": k.LoraSettings().rank, "steps": steps, **sizes,
                    "seconds_per_step": round(result.seconds / steps, 3),
                    "sequences_per_s": round(sequences * steps / result.seconds, 2),
                    "trainable_parameters": result.trainable_parameters})
