"""OpenAI-compatible endpoints over HTTP (``/chat/completions`` or ``/completions``): one server
or a pool of them (vLLM, TGI, Ollama, ``medsyn serve``).

Requests run ``concurrency`` at a time per server, spread to the least busy server. 429, 5xx,
timeouts and dropped connections are retried with exponential back-off (honouring
``Retry-After``); a server that times out or refuses a connection is taken out of rotation for
``rest_seconds`` and the request goes to another one. An empty, ``null`` or non-text answer is
asked again (bounded, with back-off) and then returned as a failed note with its reason. Any
other refusal (401, 404, …) stops the run with a one-line :class:`ModelError` after finished
notes are stored.
"""

from __future__ import annotations

import os
import random
import re
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

from medsyn_utils.core.checks import check_base_url, check_number
from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.generate.backends.base import (Backend, Completion, Decoding, Prompt,
                                                 choose_prompt_form, finish, task_messages)
from medsyn_utils.generate.models import ModelSpec

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 30.0
# After this many seconds without an answer, stderr says which server is being waited for (and
# again every WAIT_REPEAT_S seconds).
WAIT_NOTICE_S = 5.0
WAIT_REPEAT_S = 30.0


def worst_wait_seconds(timeout: float = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
                       backoff: float = DEFAULT_BACKOFF, max_backoff: float = DEFAULT_MAX_BACKOFF
                       ) -> float:
    """The longest a note waits for a server that accepts and never answers before giving up:
    every attempt times out, with the back-off pauses in between."""
    pauses = sum(min(max_backoff, backoff * 2 ** attempt) for attempt in range(max_retries))
    return (max_retries + 1) * timeout + pauses


def wait_help(timeout: float = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES) -> str:
    """What ``medsyn generate --help`` says about waiting (see :data:`WAIT_HELP`)."""
    worst = worst_wait_seconds(timeout, max_retries)
    return (f"a server that does not answer is waited for --timeout seconds per attempt, "
            f"--max-retries + 1 attempts with back-off in between: at most {worst:.0f} s "
            f"(~{worst / 60:.0f} min) per note with the defaults ({timeout:g} s, {max_retries} "
            f"retries) before generation stops; after {WAIT_NOTICE_S:g} s without an answer "
            f"stderr says which server it waits for and the attempt")


# The wording for the --help of `medsyn generate` (the --timeout / --max-retries options).
WAIT_HELP = wait_help()


def parse_base_urls(base_url: str | Sequence[str] | None) -> list[str]:
    """One address, several separated by commas/spaces, or a list; else ``OPENAI_BASE_URL``."""
    if base_url is None or (isinstance(base_url, str) and not base_url.strip()):
        base_url = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    items = re.split(r"[,\s]+", base_url) if isinstance(base_url, str) else list(base_url)
    urls = []
    for item in items:
        url = str(item).strip().rstrip("/")
        if not url:
            continue
        if not url.startswith(("http://", "https://")):
            raise ParameterError(f"base_url {url!r} is not an http(s) address: give e.g. "
                                 f"http://host:8000/v1 (several separated by commas)")
        check_base_url(url)  # a malformed address or port: one line saying why, not httpx's
        if url not in urls:
            urls.append(url)
    if not urls:
        raise ParameterError("base_url is empty: give one address or several separated by commas")
    return urls


class _WaitNotice:
    """Says on stderr that a request is still waiting: after :data:`WAIT_NOTICE_S` seconds
    without an answer, then every :data:`WAIT_REPEAT_S` seconds, until the answer comes."""

    def __init__(self, url: str, attempt: int, attempts: int, timeout: float) -> None:
        self.url, self.attempt, self.attempts, self.timeout = url, attempt, attempts, timeout
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _watch(self) -> None:
        started = time.monotonic()
        pause = WAIT_NOTICE_S
        while not self._done.wait(pause):
            waited = time.monotonic() - started
            print(f"medsyn: waiting for {self.url}: no answer after {waited:.{0 if waited >= 10 else 1}f} s (attempt "
                  f"{self.attempt} of {self.attempts}, each up to {self.timeout:g} s)",
                  file=sys.stderr, flush=True)
            pause = WAIT_REPEAT_S

    def __enter__(self) -> "_WaitNotice":
        if WAIT_NOTICE_S < self.timeout:  # a request that times out sooner says nothing
            self._thread = threading.Thread(target=self._watch, daemon=True,
                                            name="medsyn-wait-notice")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()


class _Server:
    """One endpoint of the pool: its client, a bound on requests in flight, its rest time."""

    def __init__(self, url: str, client, concurrency: int) -> None:
        self.url = url
        self.client = client
        self.slots = threading.BoundedSemaphore(concurrency)
        self.in_flight = 0
        self.resting_until = 0.0
        self.failures = 0


class OpenAIBackend(Backend):
    """An OpenAI-compatible endpoint, or a pool of them (``base_url`` with several addresses).

    Base URL(s) and key come from the arguments or ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
    :attr:`notes_per_server` counts the notes each server wrote.
    """

    name = "openai"
    RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

    def __init__(self, spec: ModelSpec, *, base_url: str | Sequence[str] | None = None,
                 api_key: str | None = None, prompt_form: str = "auto", concurrency: int = 4,
                 timeout: float = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
                 backoff: float = DEFAULT_BACKOFF, max_backoff: float = DEFAULT_MAX_BACKOFF,
                 rest_seconds: float = 30.0, empty_retries: int = 2) -> None:
        import httpx

        self.spec = spec
        timeout = check_number("timeout", timeout, low=0, low_open=True, high=86_400)
        for name, value in (("backoff", backoff), ("max_backoff", max_backoff),
                            ("rest_seconds", rest_seconds)):
            check_number(name, value, low=0, high=86_400)
        self.timeout = float(timeout)
        urls = parse_base_urls(base_url)
        self.base_url = urls[0]
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and any("api.openai.com" in url for url in urls):
            raise ModelError("backend 'openai' at api.openai.com needs a key: set OPENAI_API_KEY "
                             "or pass api_key, or point base_url/OPENAI_BASE_URL at your server")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ParameterError(f"concurrency={concurrency!r}: use an integer >= 1")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ParameterError(f"max_retries={max_retries!r}: use an integer >= 0")
        if not isinstance(empty_retries, int) or empty_retries < 0:
            raise ParameterError(f"empty_retries={empty_retries!r}: use an integer >= 0")
        self.prompt_form = choose_prompt_form(prompt_form, spec)  # auto → chat for APIs
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.empty_retries = empty_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.rest_seconds = rest_seconds
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.servers = [_Server(url, httpx.Client(base_url=url, headers=headers,
                                                  timeout=httpx.Timeout(timeout),
                                                  limits=httpx.Limits(max_connections=concurrency)),
                                concurrency) for url in urls]
        self.notes_per_server: Counter[str] = Counter()
        self.load_seconds = 0.0

    # -- prompts ---------------------------------------------------------------------------
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

    # -- the pool --------------------------------------------------------------------------
    def _pick(self, avoid: str | None) -> _Server:
        """The least busy server in rotation (not ``avoid`` when another is up)."""
        with self._lock:
            now = time.monotonic()
            up = [s for s in self.servers if s.resting_until <= now] or \
                [min(self.servers, key=lambda s: s.resting_until)]
            if avoid and len(up) > 1:
                up = [s for s in up if s.url != avoid] or up
            server = min(up, key=lambda s: (s.in_flight, s.failures))
            server.in_flight += 1
            return server

    def _release(self, server: _Server, *, failed: bool) -> None:
        with self._lock:
            server.in_flight -= 1
            if failed:
                server.failures += 1
                if len(self.servers) > 1:
                    server.resting_until = time.monotonic() + self.rest_seconds

    def _others_up(self, url: str) -> bool:
        now = time.monotonic()
        return any(s.url != url and s.resting_until <= now for s in self.servers)

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.max_backoff, self.backoff * (2 ** attempt))
        with self._lock:
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
        last, url, avoid = "", self.base_url + route, None
        empties = 0
        start = time.perf_counter()
        attempt = 0
        while attempt <= self.max_retries:
            retry_after = None
            server = self._pick(avoid)
            url = server.url + route
            down = False
            try:
                with server.slots, _WaitNotice(url, attempt + 1, self.max_retries + 1,
                                               self.timeout):
                    response = server.client.post(route, json=body)
            except httpx.TimeoutException:
                last, down = "timed out", True
            except httpx.TransportError as error:
                last, down = f"connection failed ({type(error).__name__})", True
            else:
                if response.status_code == 200:
                    self._release(server, failed=False)
                    result = self._parse(response, prompt, decoding, time.perf_counter() - start)
                    result.server = server.url
                    if not result.failed or empties >= self.empty_retries:
                        if not result.failed:
                            with self._lock:
                                self.notes_per_server[server.url] += 1
                        return result
                    empties += 1  # an empty or non-text answer: ask again, after a pause
                    self._wait(empties - 1, None)
                    continue
                detail = _error_detail(response)
                if response.status_code not in self.RETRY_STATUSES:
                    self._release(server, failed=False)
                    return Completion(error=_refusal(url, response.status_code, detail,
                                                     prompt.task_id), fatal=True)
                last = f"HTTP {response.status_code}: {detail}"
                retry_after = response.headers.get("retry-after")
                down = response.status_code >= 500
            self._release(server, failed=down)
            avoid = server.url if down else None
            attempt += 1
            if attempt <= self.max_retries and not (down and self._others_up(server.url)):
                self._wait(attempt - 1, retry_after)
        where = url if len(self.servers) == 1 else f"every server of the pool (last {url})"
        return Completion(error=f"endpoint {where} failed {self.max_retries + 1} times for task "
                                f"{prompt.task_id} (last: {last}): check the server, raise "
                                f"timeout/max_retries, or run again later (finished notes are "
                                f"kept)", fatal=True)

    def _parse(self, response, prompt: Prompt, decoding: Decoding, seconds: float) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            raw = choice["message"].get("content") if self.prompt_form == "chat" \
                else choice.get("text")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Completion(error=f"endpoint {self.base_url} sent a reply without choices for "
                                    f"task {prompt.task_id}: check it is OpenAI-compatible",
                              fatal=True)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        if raw is not None and not isinstance(raw, str):
            return Completion(finish_reason="error", seconds=seconds,
                              error=f"endpoint sent content of type {type(raw).__name__}, not "
                                    f"text, for task {prompt.task_id}")
        tokens = usage.get("completion_tokens")
        api_reason = choice.get("finish_reason")
        text, reason = finish(raw or "", prompt, decoding.stop, hit_eos=api_reason == "stop",
                              tokens=tokens if api_reason != "stop" else None,
                              max_new_tokens=decoding.max_new_tokens)
        if api_reason == "length" and reason != "empty":
            reason = "length"
        error = None
        if reason == "empty":
            error = (f"endpoint sent {'null' if raw is None else 'an empty'} content for task "
                     f"{prompt.task_id}")
        return Completion(text=text, prompt_tokens=usage.get("prompt_tokens"),
                          completion_tokens=tokens, finish_reason=reason, seconds=seconds,
                          error=error)

    def generate(self, prompts: list[Prompt], decoding: Decoding) -> list[Completion]:
        stop_flag = threading.Event()

        def one(prompt: Prompt) -> Completion:
            if stop_flag.is_set():
                return Completion(error="skipped after a fatal error", fatal=False,
                                  finish_reason="error")
            result = self._request(prompt, decoding)
            if result.fatal:
                stop_flag.set()
            result.batch_size = len(prompts)
            return result

        workers = min(self.concurrency * len(self.servers), len(prompts))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(one, prompts))

    def retries_help(self, decoding: Decoding) -> bool:
        return False  # empty answers are asked again inside :meth:`_request`

    def close(self) -> None:
        for server in self.servers:
            server.client.close()


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
