"""The paper's kind of classifier: an encoder (hub id or local folder) with a linear head.

``DeepPavlov/rubert-base-cased`` in the paper. Runs on a GPU when one is present (bf16 autocast),
otherwise on the CPU (slow for base-size encoders). Not deterministic: seeds vary its
initialisation and batch order, so the experiment fits it once per seed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsyn_utils.core.errors import ModelError
from medsyn_utils.downstream.base import CodeClassifier, balanced_weights, check_training_labels

OPTIONS = ("encoder", "max_length", "batch_size", "epochs", "learning_rate", "head_learning_rate",
           "weight_decay", "warmup_ratio", "max_steps", "device")


class TransformerClassifier(CodeClassifier):
    """An encoder (any hub id or local path) with a linear head over the first token, fine-tuned.

    The paper's classifier is ``DeepPavlov/rubert-base-cased`` with a linear head. Runs on a GPU
    when one is present (bf16 autocast), otherwise on the CPU (slow for base-size encoders).
    ``max_steps`` > 0 caps the optimisation steps (tests and smoke runs).
    """

    name = "transformer"
    deterministic = False

    def __init__(self, encoder: str = "DeepPavlov/rubert-base-cased", *, max_length: int = 128,
                 batch_size: int = 16, epochs: int = 3, learning_rate: float = 2e-5,
                 head_learning_rate: float = 1e-3, weight_decay: float = 0.01,
                 warmup_ratio: float = 0.1, max_steps: int = 0, seed: int = 0,
                 device: str | None = None) -> None:
        self.encoder, self.max_length, self.batch_size, self.epochs = encoder, max_length, batch_size, epochs
        self.learning_rate, self.head_learning_rate = learning_rate, head_learning_rate
        self.weight_decay, self.warmup_ratio, self.max_steps = weight_decay, warmup_ratio, max_steps
        self.seed, self.device = seed, device

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer_ = AutoTokenizer.from_pretrained(self.encoder)
            self.encoder_ = AutoModel.from_pretrained(self.encoder)
        except (OSError, ValueError) as error:
            raise ModelError(f"encoder {self.encoder!r} cannot be loaded ({type(error).__name__}): "
                             f"give a local model folder, or a hub id on a machine with internet "
                             f"(HF_HUB_OFFLINE unset)") from error
        self.device_ = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _batches(self, texts: list[str]):
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start:start + self.batch_size]
            yield self.tokenizer_(chunk, padding=True, truncation=True, max_length=self.max_length,
                                  return_tensors="pt")

    def _logits(self, batch) -> "Any":
        import torch

        batch = {k: v.to(self.device_) for k, v in batch.items()
                 if k in ("input_ids", "attention_mask", "token_type_ids")}
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device_.type == "cuda"
                    else torch.autocast("cpu", enabled=False))
        with autocast:
            hidden = self.encoder_(**batch).last_hidden_state[:, 0]
            return self.head_(self.dropout_(hidden)).float()

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            class_weight: str | None = None) -> "TransformerClassifier":
        import torch
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        check_training_labels(texts, labels)
        torch.manual_seed(self.seed)
        self._load()
        self.classes_ = np.array(sorted(set(labels)))
        index = {c: i for i, c in enumerate(self.classes_)}
        targets = torch.tensor([index[c] for c in labels])
        weights = None
        if class_weight == "balanced":
            by_code = balanced_weights(labels)
            weights = torch.tensor([by_code[str(c)] for c in self.classes_], dtype=torch.float32)
        hidden = self.encoder_.config.hidden_size
        self.head_ = torch.nn.Linear(hidden, len(self.classes_))
        self.dropout_ = torch.nn.Dropout(0.1)
        self.encoder_.to(self.device_)
        self.head_.to(self.device_)
        texts = list(texts)
        per_epoch = math.ceil(len(texts) / self.batch_size)
        total = per_epoch * self.epochs
        if self.max_steps > 0:
            total = min(total, self.max_steps)
        optimiser = torch.optim.AdamW([
            {"params": self.encoder_.parameters(), "lr": self.learning_rate},
            {"params": self.head_.parameters(), "lr": self.head_learning_rate},
        ], weight_decay=self.weight_decay)
        schedule = get_linear_schedule_with_warmup(optimiser, int(self.warmup_ratio * total), total)
        generator = torch.Generator().manual_seed(self.seed)
        self.encoder_.train()
        self.dropout_.train()
        step = 0
        with tqdm(total=total, desc=f"fine-tuning {Path(str(self.encoder)).name}", leave=False) as bar:
            while step < total:
                order = torch.randperm(len(texts), generator=generator).tolist()
                for start in range(0, len(order), self.batch_size):
                    if step >= total:
                        break
                    ids = order[start:start + self.batch_size]
                    batch = self.tokenizer_([texts[i] for i in ids], padding=True, truncation=True,
                                            max_length=self.max_length, return_tensors="pt")
                    loss = torch.nn.functional.cross_entropy(
                        self._logits(batch), targets[ids].to(self.device_),
                        weight=None if weights is None else weights.to(self.device_))
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(
                        list(self.encoder_.parameters()) + list(self.head_.parameters()), 1.0)
                    optimiser.step()
                    schedule.step()
                    optimiser.zero_grad(set_to_none=True)
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        self.encoder_.eval()
        self.dropout_.eval()
        return self

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (softmax of the head)."""
        import torch

        if not hasattr(self, "head_"):
            raise ModelError("TransformerClassifier is not fitted: call fit(texts, labels) first")
        out = []
        with torch.no_grad():
            for batch in self._batches(list(texts)):
                out.append(torch.softmax(self._logits(batch), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "encoder": str(self.encoder), "max_length": self.max_length,
                "batch_size": self.batch_size, "epochs": self.epochs,
                "learning_rate": self.learning_rate, "head_learning_rate": self.head_learning_rate,
                "max_steps": self.max_steps,
                "device": str(getattr(self, "device_", self.device or "auto"))}
