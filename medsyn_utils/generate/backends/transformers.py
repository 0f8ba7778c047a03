"""Batched local generation with ``transformers``: left padding, dtype per device (bf16 on
CUDA, fp32 on CPU; ``dtype="bfloat16"`` on a CPU with AVX512-BF16/AMX — see ``models.pick_dtype``), ``device_map`` for large models, chat template or plain completion; on CUDA
out-of-memory the batch is split and the size that worked is remembered.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from medsyn_utils.core.errors import ModelError
from medsyn_utils.generate.backends.base import (Backend, Completion, Decoding, Prompt, batch_seed,
                                                 choose_prompt_form, finish, local_prompt)
from medsyn_utils.generate.models import ModelSpec, load_causal_lm, load_tokenizer, pick_device


class TransformersBackend(Backend):
    """Batched local generation with ``transformers``.

    Pass ``model``/``tokenizer`` to reuse objects already loaded (benchmarks, tests); otherwise
    the tokenizer loads at once and the model on first use, so a bad task table fails before a
    large model is read from disk.
    """

    name = "transformers"

    def __init__(self, spec: ModelSpec, *, device: str = "auto", dtype: str = "auto",
                 device_map: str | None = None, prompt_form: str = "auto", model=None,
                 tokenizer=None) -> None:
        self.spec = spec
        self.device = pick_device(device) if not device_map else (device or "auto")
        self._dtype_arg = dtype
        self.device_map = device_map
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(spec)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.prompt_form = choose_prompt_form(prompt_form, spec, self.tokenizer)
        self._model = model
        self.load_seconds = 0.0
        self.working_batch_size = None

    @property
    def model(self):
        if self._model is None:
            start = time.perf_counter()
            self._model = load_causal_lm(self.spec, device=self.device, dtype=self._dtype_arg,
                                         device_map=self.device_map)
            self.load_seconds = time.perf_counter() - start
        return self._model

    # -- prompts ---------------------------------------------------------------------------
    def prepare(self, task: Mapping[str, Any]) -> Prompt:
        return local_prompt(task, self.prompt_form, self.tokenizer)

    def _encode(self, texts: list[str]):
        # A rendered chat template carries its own special tokens; a completion gets the
        # tokenizer's (Gemma needs its <bos>).
        return self.tokenizer(texts, return_tensors="pt", padding=True,
                              add_special_tokens=self.prompt_form != "chat")

    def prompt_length(self, prompt: Prompt) -> int:
        return len(self.tokenizer(prompt.text, add_special_tokens=self.prompt_form != "chat")
                   ["input_ids"])

    # -- generation ------------------------------------------------------------------------
    def _eos_ids(self) -> list[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        if eos is None:
            return []
        return list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]

    def _generate_kwargs(self, decoding: Decoding) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": decoding.max_new_tokens,
                                  "do_sample": decoding.do_sample,
                                  "pad_token_id": self.tokenizer.pad_token_id}
        eos = self._eos_ids()
        if eos:
            kwargs["eos_token_id"] = eos
        if decoding.min_new_tokens:
            kwargs["min_new_tokens"] = decoding.min_new_tokens
        if decoding.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = decoding.repetition_penalty
        if decoding.do_sample:
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=0)
        if decoding.stop:
            kwargs.update(stop_strings=list(decoding.stop), tokenizer=self.tokenizer)
        return kwargs

    def generate_batch(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        """One forward batch, no splitting (out-of-memory propagates)."""
        import torch

        encoded = self._encode([prompt.text for prompt in prompts])
        device = self.model.device
        encoded = {key: value.to(device) for key, value in encoded.items()}
        if decoding.do_sample:
            torch.manual_seed(batch_seed(decoding.seed, [p.task_id for p in prompts]))
        start = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**encoded, **self._generate_kwargs(decoding))
        seconds = time.perf_counter() - start
        width = encoded["input_ids"].shape[1]
        new_tokens = output[:, width:].tolist()
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        eos = set(self._eos_ids())
        pad = self.tokenizer.pad_token_id
        results = []
        for prompt, ids, prompt_tokens in zip(prompts, new_tokens, prompt_lengths):
            hit_eos = False
            length = len(ids)
            for position, token in enumerate(ids):
                if token in eos:
                    length, hit_eos = position, True
                    break
            if not hit_eos and pad is not None:
                while length and ids[length - 1] == pad:
                    length -= 1
            text = self.tokenizer.decode(ids[:length], skip_special_tokens=True)
            count = length + (1 if hit_eos else 0)
            text, reason = finish(text, prompt, decoding.stop, hit_eos=hit_eos, tokens=count,
                                  max_new_tokens=decoding.max_new_tokens)
            results.append(Completion(text=text, prompt_tokens=int(prompt_tokens),
                                      completion_tokens=count, finish_reason=reason,
                                      seconds=seconds / len(prompts), batch_size=len(prompts)))
        return results

    def generate(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        """Generate in chunks of the working batch size; on CUDA out-of-memory halve it."""
        import torch

        results: list[Completion] = []
        position = 0
        while position < len(prompts):
            size = len(prompts) - position
            if self.working_batch_size:
                size = min(size, self.working_batch_size)
            chunk = prompts[position:position + size]
            try:
                results.extend(self.generate_batch(chunk, decoding))
            except torch.OutOfMemoryError:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if size == 1:
                    raise ModelError(f"model {self.spec.model_id} runs out of GPU memory even at "
                                     f"batch size 1 (task {chunk[0].task_id}): use a smaller "
                                     f"max_new_tokens, dtype='bfloat16', device_map='auto' or a "
                                     f"smaller model") from None
                self.working_batch_size = max(1, size // 2)
                continue
            position += size
        return results
