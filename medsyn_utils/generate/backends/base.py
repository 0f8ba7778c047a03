"""What every generation backend shares: decoding settings, prompts, completions, the
backend interface, and the post-processing of raw model text (echo, stop strings, why it ended).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.generate.models import ModelSpec

PROMPT_FORMS = ("auto", "chat", "completion")
# A base model continues a document: a real note, then the start of a new one. It stops at the
# blank line that would start a further note, or at the next patient header of the completion
# templates ("Пациент 3." after the example's "Пациент 1." and the task's "Пациент 2.", or a new
# "Медицинская карта …" card), so it does not go on "Пациент 3. Пациент 4. …".
# "\nСимптомы:" ends a note that runs on into a made-up next record of the few-shot templates.
DEFAULT_COMPLETION_STOP: tuple[str, ...] = ("\n\n", "\nСимптомы:", "Пациент 3.",
                                            "Медицинская карта амбулаторного пациента")
PROMPT_COLUMNS = {"chat": ("user_prompt",), "completion": ("completion_prompt",)}
OPTIONAL_CHAT_COLUMN = "system_prompt"


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
    server: str | None = None     # which endpoint of a pool wrote it

    @property
    def failed(self) -> bool:
        """An error, or no text: not a note (retried, then recorded as failed)."""
        return bool(self.error) or not isinstance(self.text, str) or not self.text.strip()


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

    def retries_help(self, decoding: "Decoding") -> bool:
        """Whether asking again for an empty note can give another answer (not under greedy)."""
        return decoding.do_sample


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


def batch_seed(seed: int, task_ids: Sequence[str]) -> int:
    """A seed per batch that depends on its tasks, so a resumed run redraws the same batch alike."""
    return (seed * 1_000_003 + zlib.crc32("\x1f".join(task_ids).encode("utf-8"))) % (2**31 - 1)


def completion_stop(decoding: Decoding, prompt_form: str, default_stop: bool) -> Decoding:
    """The default stop strings of plain completion (a base model goes on to further notes)."""
    if default_stop and prompt_form == "completion":
        return replace(decoding, stop=DEFAULT_COMPLETION_STOP)
    return decoding
