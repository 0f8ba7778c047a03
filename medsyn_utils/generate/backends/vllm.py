"""vLLM's offline engine: continuous batching on a GPU (import-guarded)."""

from __future__ import annotations

import time
from typing import Any, Mapping

from medsyn_utils.core.errors import ModelError
from medsyn_utils.generate.backends.base import (Backend, Completion, Decoding, Prompt,
                                                 choose_prompt_form, finish, local_prompt)
from medsyn_utils.generate.models import ModelSpec


class VLLMBackend(Backend):
    """vLLM's offline engine: continuous batching on a GPU (import-guarded)."""

    name = "vllm"

    def __init__(self, spec: ModelSpec, *, dtype: str = "auto", prompt_form: str = "auto",
                 seed: int = 0, gpu_memory_utilization: float = 0.9,
                 tensor_parallel_size: int = 1) -> None:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ModelError("backend 'vllm' needs the vllm package on a CUDA machine: "
                             "pip install vllm there, or use backend='transformers'")
        import torch

        if not torch.cuda.is_available():
            raise ModelError("backend 'vllm' needs a CUDA GPU and none is visible: use "
                             "backend='transformers' on this machine")
        from vllm import LLM

        from medsyn_utils.generate.models import model_path

        if spec.adapter:
            raise ModelError(f"backend 'vllm' does not apply adapter {spec.adapter} here: merge "
                             f"it into the model first, or use backend='transformers'")
        self.spec = spec
        start = time.perf_counter()
        self.llm = LLM(model=model_path(spec), dtype=dtype if dtype != "auto" else "auto",
                       seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                       tensor_parallel_size=tensor_parallel_size,
                       **({"revision": spec.revision} if spec.source == "hub" else {}))
        self.load_seconds = time.perf_counter() - start
        self.tokenizer = self.llm.get_tokenizer()
        self.prompt_form = choose_prompt_form(prompt_form, spec, self.tokenizer)

    def prepare(self, task: Mapping[str, Any]) -> Prompt:
        return local_prompt(task, self.prompt_form, self.tokenizer)

    def generate(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=1, max_tokens=decoding.max_new_tokens, min_tokens=decoding.min_new_tokens,
            temperature=decoding.temperature, top_p=decoding.top_p if decoding.do_sample else 1.0,
            repetition_penalty=decoding.repetition_penalty, seed=decoding.seed,
            stop=list(decoding.stop) or None)
        start = time.perf_counter()
        outputs = self.llm.generate([p.text for p in prompts], params, use_tqdm=False)
        seconds = (time.perf_counter() - start) / max(1, len(prompts))
        results = []
        for prompt, output in zip(prompts, outputs):
            best = output.outputs[0]
            tokens = len(best.token_ids)
            text, reason = finish(best.text, prompt, decoding.stop,
                                  hit_eos=best.finish_reason == "stop", tokens=tokens,
                                  max_new_tokens=decoding.max_new_tokens)
            results.append(Completion(text=text, prompt_tokens=len(output.prompt_token_ids or []),
                                      completion_tokens=tokens, finish_reason=reason,
                                      seconds=seconds, batch_size=len(prompts)))
        return results
