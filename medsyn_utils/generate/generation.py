"""Stage 03: one note per task, from a local model, an OpenAI-compatible endpoint or vLLM.

:func:`generate_store` is the whole stage: it validates the task table, opens the resumable
store (:mod:`medsyn_utils.store`), skips tasks already done, sorts the rest into length buckets,
generates them batch by batch and appends each finished batch durably. Three backends share one
interface (:class:`Backend`):

* ``transformers`` (default): batched ``generate`` with left padding, dtype per device (bf16 on
  CUDA, fp32 on CPU), ``device_map`` for large models, chat template or plain completion, and on
  CUDA out-of-memory the batch is split and the size that worked is remembered;
* ``openai``: any OpenAI-compatible chat/completions endpoint (GPT-4-class APIs, vLLM or TGI
  servers, Ollama, :mod:`medsyn_utils.serve`), with bounded concurrency, retries with back-off
  on 429/5xx and timeouts;
* ``vllm``: vLLM's offline engine where it is installed and a GPU is present.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from medsyn_utils.core.errors import InputTableError, ModelError, ParameterError
from medsyn_utils.generate.models import (DEFAULT_MODEL, ModelSpec, api_model, load_causal_lm, load_tokenizer,
                     pick_device, pick_dtype, resolve_model)
from medsyn_utils.core.provenance import now_iso
from medsyn_utils.core.schema import STORE_FIELDS
from medsyn_utils.generate.store import GenerationStore, read_records
from medsyn_utils.tasks.table import load_task_table  # noqa: F401 - part of this module's API

BACKENDS = ("transformers", "openai", "vllm")
PROMPT_FORMS = ("auto", "chat", "completion")
# A base model continues a document: a real note, then the start of a new one. It stops at the
# blank line that would start a further note.
DEFAULT_COMPLETION_STOP: tuple[str, ...] = ("\n\n",)
PROMPT_COLUMNS = {"chat": ("user_prompt",), "completion": ("completion_prompt",)}
OPTIONAL_CHAT_COLUMN = "system_prompt"


# =========================================================================== decoding and I/O types

@dataclass(frozen=True)
class Decoding:
    """Decoding parameters; recorded with every note so a note says how it was made."""

    max_new_tokens: int = 256
    temperature: float = 0.7          # 0 → greedy
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    seed: int = 0
    min_new_tokens: int = 0           # > 0 forces a length (benchmarks)
    stop: tuple[str, ...] = ()

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def validate(self) -> "Decoding":
        """Raise :class:`ParameterError` naming the first bad value."""
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ParameterError(f"max_new_tokens={self.max_new_tokens!r}: use an integer >= 1")
        if not isinstance(self.min_new_tokens, int) or not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ParameterError(f"min_new_tokens={self.min_new_tokens!r}: use an integer between "
                                 f"0 and max_new_tokens ({self.max_new_tokens})")
        if self.temperature < 0:
            raise ParameterError(f"temperature={self.temperature!r}: use 0 (greedy) or a positive "
                                 f"number")
        if not 0 < self.top_p <= 1:
            raise ParameterError(f"top_p={self.top_p!r}: use a number in (0, 1]")
        if self.repetition_penalty <= 0:
            raise ParameterError(f"repetition_penalty={self.repetition_penalty!r}: use a positive "
                                 f"number (1.0 = none)")
        if not isinstance(self.seed, int):
            raise ParameterError(f"seed={self.seed!r}: use an integer")
        return self

    def record(self, prompt_form: str, batch_size: int) -> dict[str, Any]:
        """The ``decoding`` field of a store record."""
        return {"max_new_tokens": self.max_new_tokens, "min_new_tokens": self.min_new_tokens,
                "temperature": self.temperature, "top_p": self.top_p if self.do_sample else 1.0,
                "repetition_penalty": self.repetition_penalty, "seed": self.seed,
                "do_sample": self.do_sample, "stop": list(self.stop), "prompt_form": prompt_form,
                "batch_size": batch_size}


@dataclass
class Prompt:
    """What is sent for one task: rendered text (local engines) and/or chat messages (APIs)."""

    task_id: str
    text: str = ""
    messages: list[dict[str, str]] | None = None
    echoes: tuple[str, ...] = ()  # texts a model may repeat at the start of its answer

    @property
    def sent(self) -> str:
        """The prompt as sent, as a string (chat over an API: the JSON of the messages)."""
        if self.text:
            return self.text
        return json.dumps(self.messages or [], ensure_ascii=False)


@dataclass
class Completion:
    """One generated note (or one failure, with ``error`` set)."""

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    seconds: float = 0.0
    error: str | None = None
    fatal: bool = False
    batch_size: int = 1


@dataclass
class GenerationReport:
    """What a run did: counts, token totals and throughput (tokens/s, notes/min)."""

    store_path: str
    model_id: str
    backend: str
    prompt_form: str
    tasks_total: int
    already_done: int = 0
    generated: int = 0
    failed: int = 0
    pending_left: int = 0
    finish_reasons: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0          # generation wall time (model loading excluded)
    load_seconds: float = 0.0
    batch_size: int = 0
    batch_size_used: int = 0      # after out-of-memory splits
    licence: str | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def notes_per_min(self) -> float:
        return 60.0 * self.generated / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_per_s"] = round(self.tokens_per_s, 3)
        data["notes_per_min"] = round(self.notes_per_min, 3)
        data["seconds"] = round(self.seconds, 3)
        data["load_seconds"] = round(self.load_seconds, 3)
        return data


# =========================================================================== post-processing

def strip_echo(text: str, echoes: Sequence[str]) -> str:
    """Drop a prompt the model repeated at the start of its answer."""
    body = text.lstrip()
    for echo in echoes:
        head = echo.strip()
        if head and body.startswith(head):
            return body[len(head):]
    return text


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; whether one was found.

    Leading whitespace is skipped first, so a completion that opens with a blank line is not
    cut to nothing.
    """
    offset = len(text) - len(text.lstrip())
    cut = None
    for marker in stop:
        if not marker:
            continue
        where = text.find(marker, offset)
        if where >= 0 and (cut is None or where < cut):
            cut = where
    if cut is None:
        return text, False
    return text[:cut], True


def finish(text: str, prompt: Prompt, stop: Sequence[str], *, hit_eos: bool, tokens: int | None,
           max_new_tokens: int) -> tuple[str, str]:
    """Post-process raw model text: strip echo, cut at stop strings, say why it ended."""
    text = strip_echo(text, prompt.echoes)
    text, cut = cut_at_stop(text, stop)
    text = text.strip()
    if not text:
        return "", "empty"
    if hit_eos or cut:
        return text, "stop"
    if tokens is not None and tokens >= max_new_tokens:
        return text, "length"
    return text, "stop"


# =========================================================================== prompts

def render_chat(tokenizer, messages: list[dict[str, str]]) -> str:
    """Messages → the text a local chat model sees (its chat template).

    Templates that refuse a system role (some Gemma/Mistral ones) get the system text folded
    into the first user message; a tokenizer without a template gets the messages joined.
    """
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=True)
        except Exception:  # jinja2 raises TemplateError for an unsupported role
            merged = _fold_system(messages)
            return tokenizer.apply_chat_template(merged, tokenize=False,
                                                 add_generation_prompt=True)
    return "\n\n".join(message["content"] for message in messages) + "\n\n"


def _fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    return rest


def task_messages(task: Mapping[str, Any]) -> list[dict[str, str]]:
    """Chat messages of a task row (system message only when the row has one)."""
    messages = []
    system = task.get(OPTIONAL_CHAT_COLUMN)
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": str(task["user_prompt"])})
    return messages


def local_prompt(task: Mapping[str, Any], prompt_form: str, tokenizer) -> Prompt:
    """The text a local model sees: the chat template applied to the task's messages, or the
    plain completion document; echoes lists what to strip if the model repeats it."""
    task_id = str(task["task_id"])
    if prompt_form == "chat":
        messages = task_messages(task)
        text = render_chat(tokenizer, messages)
        return Prompt(task_id, text=text, messages=messages, echoes=(text, messages[-1]["content"]))
    text = str(task["completion_prompt"])
    return Prompt(task_id, text=text, echoes=(text,))


# =========================================================================== backends

class Backend:
    """Common interface: build a prompt from a task row, generate a list of prompts."""

    name = "backend"
    spec: ModelSpec
    prompt_form: str = "completion"
    working_batch_size: int | None = None

    def prepare(self, task: Mapping[str, Any]) -> Prompt:
        raise NotImplementedError

    def prompt_length(self, prompt: Prompt) -> int:
        """Rough length used to sort tasks into buckets of similar length."""
        return len(prompt.sent)

    def generate(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        """Completions in the order of ``prompts``."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def choose_prompt_form(requested: str, spec: ModelSpec, tokenizer=None) -> str:
    """``chat`` for chat models, ``completion`` for base models; ``requested`` overrides."""
    text = (requested or "auto").strip().lower()
    if text not in PROMPT_FORMS:
        raise ParameterError(f"prompt_form={requested!r} is unknown: use one of {PROMPT_FORMS}")
    if text != "auto":
        return text
    if spec.chat is not None:
        return "chat" if spec.chat else "completion"
    if tokenizer is not None:
        return "chat" if getattr(tokenizer, "chat_template", None) else "completion"
    return "chat"


def _batch_seed(seed: int, task_ids: Sequence[str]) -> int:
    """A seed per batch that depends on its tasks, so a resumed run redraws the same batch alike."""
    return (seed * 1_000_003 + zlib.crc32("\x1f".join(task_ids).encode("utf-8"))) % (2**31 - 1)


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
            torch.manual_seed(_batch_seed(decoding.seed, [p.task_id for p in prompts]))
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


class OpenAIBackend(Backend):
    """An OpenAI-compatible endpoint over HTTP (``/chat/completions`` or ``/completions``).

    Base URL and key come from the arguments or ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
    Requests of a batch run ``concurrency`` at a time; 429, 5xx, timeouts and dropped
    connections are retried with exponential back-off (honouring ``Retry-After``); any other
    refusal stops the run with a one-line :class:`ModelError` after finished notes are stored.
    """

    name = "openai"
    RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

    def __init__(self, spec: ModelSpec, *, base_url: str | None = None,
                 api_key: str | None = None, prompt_form: str = "auto", concurrency: int = 4,
                 timeout: float = 120.0, max_retries: int = 5, backoff: float = 1.0,
                 max_backoff: float = 30.0) -> None:
        import httpx

        self.spec = spec
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL")
                         or "https://api.openai.com/v1").rstrip("/")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and "api.openai.com" in self.base_url:
            raise ModelError("backend 'openai' at api.openai.com needs a key: set OPENAI_API_KEY "
                             "or pass api_key, or point base_url/OPENAI_BASE_URL at your server")
        if concurrency < 1:
            raise ParameterError(f"concurrency={concurrency!r}: use an integer >= 1")
        if max_retries < 0:
            raise ParameterError(f"max_retries={max_retries!r}: use an integer >= 0")
        self.prompt_form = choose_prompt_form(prompt_form, spec)  # auto → chat for APIs
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._rng = random.Random(0)
        self._rng_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers,
                                   timeout=httpx.Timeout(timeout),
                                   limits=httpx.Limits(max_connections=concurrency))
        self.load_seconds = 0.0

    def prepare(self, task: Mapping[str, Any]) -> Prompt:
        task_id = str(task["task_id"])
        if self.prompt_form == "chat":
            messages = task_messages(task)
            return Prompt(task_id, messages=messages, echoes=(messages[-1]["content"],))
        text = str(task["completion_prompt"])
        return Prompt(task_id, text=text, echoes=(text,))

    def _body(self, prompt: Prompt, decoding: Decoding) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.spec.model_id,
                                "max_tokens": decoding.max_new_tokens,
                                "temperature": decoding.temperature, "seed": decoding.seed}
        if decoding.do_sample:
            body["top_p"] = decoding.top_p
        if decoding.stop:
            body["stop"] = list(decoding.stop)[:4]  # the OpenAI API accepts at most four
        if decoding.repetition_penalty != 1.0:
            body["repetition_penalty"] = decoding.repetition_penalty  # vLLM/TGI extension
        if decoding.min_new_tokens:
            body["min_tokens"] = decoding.min_new_tokens  # vLLM extension
        if self.prompt_form == "chat":
            body["messages"] = prompt.messages
            return "/chat/completions", body
        body["prompt"] = prompt.text
        return "/completions", body

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.max_backoff, self.backoff * (2 ** attempt))
        with self._rng_lock:
            delay *= 0.5 + self._rng.random() / 2  # jitter, so parallel retries spread out
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), self.max_backoff))
            except ValueError:
                pass
        time.sleep(delay)

    def _request(self, prompt: Prompt, decoding: Decoding) -> Completion:
        import httpx

        route, body = self._body(prompt, decoding)
        url = f"{self.base_url}{route}"
        last = ""
        start = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                response = self.client.post(route, json=body)
            except httpx.TimeoutException:
                last = "timed out"
            except httpx.TransportError as error:
                last = f"connection failed ({type(error).__name__})"
            else:
                if response.status_code == 200:
                    return self._parse(response, prompt, decoding, time.perf_counter() - start)
                detail = _error_detail(response)
                if response.status_code not in self.RETRY_STATUSES:
                    return Completion(error=_refusal(url, response.status_code, detail,
                                                     prompt.task_id), fatal=True)
                last = f"HTTP {response.status_code}: {detail}"
                retry_after = response.headers.get("retry-after")
            if attempt < self.max_retries:
                self._wait(attempt, retry_after)
        return Completion(error=f"endpoint {url} failed {self.max_retries + 1} times for task "
                                f"{prompt.task_id} (last: {last}): check the server, raise "
                                f"timeout/max_retries, or run again later (finished notes are "
                                f"kept)", fatal=True)

    def _parse(self, response, prompt: Prompt, decoding: Decoding, seconds: float) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            raw = (choice["message"].get("content") if self.prompt_form == "chat"
                   else choice.get("text")) or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Completion(error=f"endpoint {self.base_url} sent a reply without choices for "
                                    f"task {prompt.task_id}: check it is OpenAI-compatible",
                              fatal=True)
        usage = data.get("usage") or {}
        tokens = usage.get("completion_tokens")
        api_reason = choice.get("finish_reason")
        text, reason = finish(raw, prompt, decoding.stop, hit_eos=api_reason == "stop",
                              tokens=tokens if api_reason != "stop" else None,
                              max_new_tokens=decoding.max_new_tokens)
        if api_reason == "length" and reason != "empty":
            reason = "length"
        return Completion(text=text, prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=tokens, finish_reason=reason, seconds=seconds)

    def generate(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        stop_flag = threading.Event()

        def one(prompt: Prompt) -> Completion:
            if stop_flag.is_set():
                return Completion(error="skipped after a fatal error", fatal=False)
            result = self._request(prompt, decoding)
            if result.fatal:
                stop_flag.set()
            result.batch_size = len(prompts)
            return result

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(one, prompts))

    def close(self) -> None:
        self.client.close()


def _error_detail(response) -> str:
    try:
        data = response.json()
        message = data.get("error", {}).get("message") if isinstance(data.get("error"), dict) \
            else data.get("error") or data.get("detail") or data.get("message")
        text = str(message or "")
    except (ValueError, AttributeError):
        text = response.text
    text = " ".join(text.split())
    return text[:200] or response.reason_phrase


def _refusal(url: str, status: int, detail: str, task_id: str) -> str:
    if status in (401, 403):
        fix = "set OPENAI_API_KEY or pass api_key"
    elif status == 404:
        fix = "check base_url (it usually ends in /v1) and the served model name"
    else:
        fix = "check the model name and decoding parameters the server accepts"
    return f"endpoint {url} refused task {task_id} (HTTP {status}: {detail}): {fix}"


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


def make_backend(backend: str, model: str | ModelSpec = DEFAULT_MODEL, *, device: str = "auto",
                 dtype: str = "auto", device_map: str | None = None, prompt_form: str = "auto",
                 adapter: str | None = None, revision: str | None = None, seed: int = 0,
                 base_url: str | None = None, api_key: str | None = None, concurrency: int = 4,
                 timeout: float = 120.0, max_retries: int = 5, backoff: float = 1.0) -> Backend:
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
        return VLLMBackend(spec, dtype=dtype, prompt_form=prompt_form, seed=seed)
    return TransformersBackend(spec, device=device, dtype=dtype, device_map=device_map,
                               prompt_form=prompt_form)


# =========================================================================== task tables

def validate_tasks(tasks: Any, prompt_form: str | None = None):
    """Check a task table before any model is loaded; return it with string task ids.

    ``prompt_form`` ``chat`` needs ``user_prompt`` (``system_prompt`` optional), ``completion``
    needs ``completion_prompt``; ``None`` accepts either.
    """
    import pandas as pd

    if not isinstance(tasks, pd.DataFrame):
        raise InputTableError(f"tasks must be a pandas DataFrame, not {type(tasks).__name__}: "
                              f"load the table with generation.load_task_table(path)")
    if tasks.empty:
        raise InputTableError("task table is empty: build tasks with notebook 02 or "
                              "`medsyn tasks` (or raise its number of tasks)")
    if "task_id" not in tasks.columns:
        raise InputTableError(f"task table lacks column ['task_id'] (has {list(tasks.columns)[:8]}): "
                              f"use a table built by notebook 02")
    if prompt_form in PROMPT_COLUMNS:
        needed = PROMPT_COLUMNS[prompt_form]
        missing = [name for name in needed if name not in tasks.columns]
        if missing:
            raise InputTableError(f"task table lacks columns {missing} needed for prompt_form="
                                  f"{prompt_form!r}: use a table built by notebook 02 or another "
                                  f"prompt_form")
    else:
        needed = tuple(col for cols in PROMPT_COLUMNS.values() for col in cols
                       if col in tasks.columns)
        if not needed:
            raise InputTableError("task table lacks columns ['user_prompt'] and "
                                  "['completion_prompt']: it needs at least one prompt column")
    frame = tasks.copy()
    if frame["task_id"].isna().any():
        raise InputTableError("task table has rows without task_id: give every row an id")
    frame["task_id"] = frame["task_id"].astype(str)
    duplicated = frame["task_id"][frame["task_id"].duplicated()].unique().tolist()
    if duplicated:
        raise InputTableError(f"task table repeats task ids {duplicated[:5]}: task ids must be "
                              f"unique")
    if prompt_form in PROMPT_COLUMNS:
        for column in PROMPT_COLUMNS[prompt_form]:
            values = frame[column]
            blank = values.isna() | (values.astype(str).str.strip() == "")
            if blank.any():
                ids = frame.loc[blank, "task_id"].head(5).tolist()
                raise InputTableError(f"task table column {column!r} is empty for tasks {ids}: "
                                      f"fill the prompts or drop those rows")
    return frame


def task_table_for_run(run_dir: str | os.PathLike[str], tasks_path: str = "", *, n: int = 4,
                       seed: int = 0):
    """The run's task table, or a tiny one built through stage 02's builder when missing.

    Returns ``(table, path, built)``. A built table is saved into the run folder as stage 02
    would (``tasks.parquet``, ``tasks.csv``), so later stages see the same tasks.
    """
    from medsyn_utils.core.paths import resolve

    folder = resolve(run_dir)
    path = resolve(tasks_path) if tasks_path else folder / "tasks.parquet"
    if path.is_file():
        return load_task_table(path), path, False
    if tasks_path:
        raise InputTableError(f"task table {tasks_path} does not exist: run notebook 02 first or "
                              f"set tasks_path=''")
    try:
        from medsyn_utils.tasks import table as task_stage
    except ModuleNotFoundError as error:
        if error.name and error.name.endswith("tasks"):
            raise InputTableError(f"no task table at {path}: run notebook 02 (02_tasks) for this "
                                  f"run_dir first") from None
        raise
    build = getattr(task_stage, "build_task_table", None)
    if build is None:
        raise InputTableError(f"no task table at {path}: run notebook 02 (02_tasks) for this "
                              f"run_dir first")
    table = build(n=n, seed=seed)
    writer = getattr(task_stage, "write_task_table", None)
    if writer is not None:
        path = Path(writer(table, folder)["parquet"])
    else:
        folder.mkdir(parents=True, exist_ok=True)
        table.to_parquet(path, index=False)
    return table, path, True


# =========================================================================== the stage

def generate_store(tasks, store_path: str | os.PathLike[str], model: str = DEFAULT_MODEL,
                   backend: str | Backend = "transformers", batch_size: int = 8,
                   max_new_tokens: int = 256, temperature: float = 0.7, top_p: float = 0.95,
                   repetition_penalty: float = 1.0, seed: int = 0, device: str = "auto",
                   dtype: str = "auto", prompt_form: str = "auto", progress: bool = True, *,
                   min_new_tokens: int = 0, stop: Sequence[str] | None = None,
                   max_tasks: int = 0, device_map: str | None = None, adapter: str | None = None,
                   revision: str | None = None, base_url: str | None = None,
                   api_key: str | None = None, concurrency: int = 4, timeout: float = 120.0,
                   max_retries: int = 5, backoff: float = 1.0) -> GenerationReport:
    """Generate one note per task into the resumable JSONL store at ``store_path``.

    Tasks already in the store are skipped, so calling this again after a crash (or with a
    larger ``max_tasks``) continues where the last run stopped. ``backend`` is a name or a
    ready :class:`Backend` (then ``model``, ``device``… are ignored). ``stop`` defaults to a
    blank line for plain completion (a base model would go on to write further notes) and to
    none for chat. Returns counts and throughput; finished notes stay in the store even when a
    later batch fails.
    """
    from tqdm.auto import tqdm

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size={batch_size!r}: use an integer >= 1")
    if not isinstance(max_tasks, int) or max_tasks < 0:
        raise ParameterError(f"max_tasks={max_tasks!r}: use 0 (all) or a positive integer")
    if isinstance(backend, str):
        if backend.strip().lower() not in BACKENDS:
            raise ParameterError(f"backend={backend!r} is unknown: use one of "
                                 f"{', '.join(BACKENDS)}")
        if prompt_form not in PROMPT_FORMS:
            raise ParameterError(f"prompt_form={prompt_form!r} is unknown: use one of "
                                 f"{PROMPT_FORMS}")
    Decoding(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
             repetition_penalty=repetition_penalty, seed=seed,
             min_new_tokens=min_new_tokens).validate()
    if isinstance(backend, str) and backend.strip().lower() == "transformers" and not device_map:
        pick_device(device)  # a missing GPU fails before anything is loaded
        pick_dtype(dtype, "cpu")
    explicit_form = prompt_form if prompt_form in PROMPT_COLUMNS else None
    frame = validate_tasks(tasks, explicit_form)
    store_path = Path(store_path)

    with GenerationStore(store_path) as store:
        if store.done and isinstance(backend, str):
            _check_resume(store_path, model, adapter, Decoding(
                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                repetition_penalty=repetition_penalty, seed=seed, min_new_tokens=min_new_tokens))
        already = sum(1 for task_id in frame["task_id"] if task_id in store.done)
        pending = frame[~frame["task_id"].isin(store.done)]
        if max_tasks:
            pending = pending.head(max_tasks)
        engine = backend if isinstance(backend, Backend) else None
        if pending.empty:
            spec_id = engine.spec.model_id if engine else str(model)
            name = engine.name if engine else str(backend)
            return GenerationReport(store_path=str(store_path), model_id=spec_id, backend=name,
                                    prompt_form=prompt_form, tasks_total=len(frame),
                                    already_done=already, batch_size=batch_size,
                                    batch_size_used=batch_size)
        if engine is None:
            engine = make_backend(str(backend), model, device=device, dtype=dtype,
                                  device_map=device_map, prompt_form=prompt_form, adapter=adapter,
                                  revision=revision, seed=seed, base_url=base_url,
                                  api_key=api_key, concurrency=concurrency, timeout=timeout,
                                  max_retries=max_retries, backoff=backoff)
        try:
            return _run(engine, frame, pending, store, store_path, already, batch_size,
                        Decoding(max_new_tokens=max_new_tokens, temperature=temperature,
                                 top_p=top_p, repetition_penalty=repetition_penalty, seed=seed,
                                 min_new_tokens=min_new_tokens,
                                 stop=tuple(stop) if stop is not None else ()),
                        stop is None, progress, tqdm)
        finally:
            if not isinstance(backend, Backend):
                engine.close()


RESUME_KEYS = ("max_new_tokens", "min_new_tokens", "temperature", "top_p", "repetition_penalty",
               "seed", "do_sample")


def _check_resume(store_path: Path, model: str, adapter: str | None, decoding: Decoding) -> None:
    """Refuse to continue a store made with another model or other decoding settings.

    Resuming skips finished tasks, so mixing settings would leave a store whose notes were not all
    made the way the run records say. ``batch_size`` and the prompt form may differ.
    """
    from medsyn_utils.generate.models import resolve_model

    first = read_records(store_path)[0]
    try:
        wanted_model = resolve_model(str(model), adapter=adapter)
    except Exception:  # noqa: BLE001 - a bad model is reported when it is loaded
        return
    wanted = {k: v for k, v in decoding.record("chat", 0).items() if k in RESUME_KEYS}
    found = {k: v for k, v in (first.get("decoding") or {}).items() if k in RESUME_KEYS}
    changed = [f"{k} {found.get(k)!r} → {v!r}" for k, v in wanted.items()
               if k in found and found[k] != v]
    if first.get("model_id") != wanted_model.model_id:
        changed.insert(0, f"model {first.get('model_id')!r} → {wanted_model.model_id!r}")
    if (first.get("adapter") or None) != (wanted_model.adapter or None):
        changed.append(f"adapter {first.get('adapter')!r} → {wanted_model.adapter!r}")
    if changed:
        raise ParameterError(
            f"{store_path} holds notes made with other settings ({'; '.join(changed)}): write to "
            f"a new store (another --out) or re-run with --force to set the old notes aside")


def _run(engine: Backend, frame, pending, store: GenerationStore, store_path: Path, already: int,
         batch_size: int, decoding: Decoding, default_stop: bool, progress: bool,
         tqdm) -> GenerationReport:
    from dataclasses import replace

    validate_tasks(pending, engine.prompt_form)
    if default_stop and engine.prompt_form == "completion":
        decoding = replace(decoding, stop=DEFAULT_COMPLETION_STOP)
    prompts = [engine.prepare(row) for row in pending.to_dict("records")]
    lengths = {p.task_id: engine.prompt_length(p) for p in prompts}
    # Length buckets: similar lengths share a batch (little padding); longest first, so an
    # out-of-memory split happens early and its size is kept for the rest.
    prompts.sort(key=lambda p: (-lengths[p.task_id], p.task_id))
    report = GenerationReport(store_path=str(store_path), model_id=engine.spec.model_id,
                              backend=engine.name, prompt_form=engine.prompt_form,
                              tasks_total=len(frame), already_done=already,
                              batch_size=batch_size, licence=engine.spec.licence)
    reasons: Counter[str] = Counter()
    fatal: str | None = None
    bar = tqdm(total=len(prompts), desc=f"generating ({engine.name})", unit="note",
               disable=not progress)
    _ = engine.model if isinstance(engine, TransformersBackend) else None  # load before timing
    report.load_seconds = getattr(engine, "load_seconds", 0.0)
    start = time.perf_counter()
    try:
        for first in range(0, len(prompts), batch_size):
            chunk = prompts[first:first + batch_size]
            completions = engine.generate(chunk, decoding)
            records = []
            for prompt, completion in zip(chunk, completions):
                if completion.error:
                    report.failed += 1
                    if completion.fatal and fatal is None:
                        fatal = completion.error
                    continue
                records.append(_record(engine, prompt, completion, decoding))
                reasons[completion.finish_reason] += 1
                report.prompt_tokens += completion.prompt_tokens or 0
                report.completion_tokens += completion.completion_tokens or 0
            report.generated += store.append(records)
            bar.update(len(chunk))
            if fatal:
                break
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        report.finish_reasons = dict(reasons)
        report.batch_size_used = engine.working_batch_size or batch_size
        report.pending_left = len(frame) - len(store.done.intersection(frame["task_id"]))
    if fatal:
        raise ModelError(fatal)
    return report


def _record(engine: Backend, prompt: Prompt, completion: Completion,
            decoding: Decoding) -> dict[str, Any]:
    spec = engine.spec
    record = {
        "task_id": prompt.task_id, "model_id": spec.model_id, "model_revision": spec.revision,
        "adapter": spec.adapter, "backend": engine.name,
        "decoding": decoding.record(engine.prompt_form, completion.batch_size),
        "prompt": prompt.sent, "response": completion.text,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "finish_reason": completion.finish_reason, "seconds": round(completion.seconds, 4),
        "created_at": now_iso(),
    }
    return {name: record[name] for name in STORE_FIELDS}


def stage_metrics(report: GenerationReport, store_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Key numbers of the stage for its record: notes in the store, this run's counts and speed."""
    records = read_records(store_path)
    reasons = Counter(r.get("finish_reason") for r in records)
    return {"notes": len(records), "generated_this_run": report.generated,
            "already_done": report.already_done, "failed": report.failed,
            "pending_left": report.pending_left,
            "tokens_per_s": round(report.tokens_per_s, 3),
            "notes_per_min": round(report.notes_per_min, 3),
            "completion_tokens_this_run": report.completion_tokens,
            "seconds": round(report.seconds, 3), "load_seconds": round(report.load_seconds, 3),
            "batch_size_used": report.batch_size_used, "prompt_form": report.prompt_form,
            "finish_reasons": {key: reasons.get(key, 0) for key in
                               ("stop", "length", "empty", "error")},
            "empty_share": round(reasons.get("empty", 0) / len(records), 4) if records else 0.0}


def preview(store_path: str | os.PathLike[str], tasks=None, n: int = 3):
    """A few stored notes beside their prompts (the user prompt where the table has one)."""
    import pandas as pd

    records = read_records(store_path)[:n]
    rows = []
    prompts = {}
    if tasks is not None and "task_id" in tasks.columns:
        for row in tasks.to_dict("records"):
            prompts[str(row["task_id"])] = row
    for record in records:
        task = prompts.get(str(record["task_id"]), {})
        shown = task.get("user_prompt") if record["decoding"].get("prompt_form") == "chat" \
            else task.get("completion_prompt")
        rows.append({"task_id": record["task_id"],
                     "prompt": shown if isinstance(shown, str) else record["prompt"],
                     "response": record["response"], "finish_reason": record["finish_reason"],
                     "completion_tokens": record["completion_tokens"]})
    return pd.DataFrame(rows, columns=["task_id", "prompt", "response", "finish_reason",
                                       "completion_tokens"])


# =========================================================================== CLI


__all__ = [
    "Backend", "Completion", "Decoding", "GenerationReport", "OpenAIBackend",
    "Prompt", "TransformersBackend", "VLLMBackend", "choose_prompt_form",
    "generate_store", "load_task_table", "make_backend", "preview", "render_chat",
    "stage_metrics", "task_table_for_run", "validate_tasks",
]
