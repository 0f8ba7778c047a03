"""Generation backends: one interface (:class:`Backend`), three engines.

* ``transformers`` (default): batched local generation (:mod:`.transformers`);
* ``openai``: one OpenAI-compatible endpoint or a pool of them (:mod:`.openai`);
* ``vllm``: vLLM's offline engine on a GPU (:mod:`.vllm`).

To add a backend: subclass :class:`Backend` in a module here and name it in :func:`make_backend`.
"""

from __future__ import annotations

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.generate.backends.base import PROMPT_FORMS, Backend
from medsyn_utils.generate.backends.openai import OpenAIBackend
from medsyn_utils.generate.backends.transformers import TransformersBackend
from medsyn_utils.generate.backends.vllm import VLLMBackend
from medsyn_utils.generate.models import DEFAULT_MODEL, ModelSpec, api_model, resolve_model

BACKENDS = ("transformers", "openai", "vllm")


def make_backend(backend: str, model: str | ModelSpec = DEFAULT_MODEL, *, device: str = "auto",
                 dtype: str = "auto", device_map: str | None = None, prompt_form: str = "auto",
                 adapter: str | None = None, revision: str | None = None, seed: int = 0,
                 base_url: str | None = None, api_key: str | None = None, concurrency: int = 4,
                 timeout: float = 120.0, max_retries: int = 5, backoff: float = 1.0,
                 tensor_parallel_size: int = 1) -> Backend:
    """Build a backend by name (``transformers``, ``openai``, ``vllm``)."""
    name = (backend or "").strip().lower()
    if name not in BACKENDS:
        raise ParameterError(f"backend={backend!r} is unknown: use one of {', '.join(BACKENDS)}")
    if prompt_form not in PROMPT_FORMS:
        raise ParameterError(f"prompt_form={prompt_form!r} is unknown: use one of {PROMPT_FORMS}")
    if name == "openai":
        spec = model if isinstance(model, ModelSpec) else api_model(str(model))
        return OpenAIBackend(spec, base_url=base_url, api_key=api_key, prompt_form=prompt_form,
                             concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                             backoff=backoff)
    spec = model if isinstance(model, ModelSpec) else resolve_model(model, revision=revision,
                                                                     adapter=adapter)
    if name == "vllm":
        return VLLMBackend(spec, dtype=dtype, prompt_form=prompt_form, seed=seed,
                           tensor_parallel_size=tensor_parallel_size)
    return TransformersBackend(spec, device=device, dtype=dtype, device_map=device_map,
                               prompt_form=prompt_form)
