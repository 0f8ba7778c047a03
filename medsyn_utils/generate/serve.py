"""A small OpenAI-compatible server around a local model (standard library HTTP server).

``medsyn serve --model PATH`` answers ``POST /v1/chat/completions``, ``POST /v1/completions``
and ``GET /v1/models`` like vLLM or TGI would, so the ``openai`` backend, the ``openai``
Python client or ``curl`` can talk to any local model. It serves one request at a time and is
meant for loopback use: tests, a notebook on a laptop, a model shared between a few processes.
For real serving on a GPU use vLLM or TGI.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence

from medsyn_utils.core.checks import check_port, os_reason
from medsyn_utils.core.errors import MedsynError, ParameterError
from medsyn_utils.generate.backends.base import Decoding, Prompt, render_chat
from medsyn_utils.generate.backends.transformers import TransformersBackend
from medsyn_utils.generate.models import ModelSpec, resolve_model


def listen(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A bound HTTP server on ``host:port`` (0 = any free port); a bad or busy port, or an
    address not on this machine, is one line naming it."""
    check_port("serve --port", port, allow_zero=True)
    try:
        httpd = ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise ParameterError(f"cannot listen on {host}:{port}: {os_reason(error)}") from None
    httpd.daemon_threads = True
    return httpd


class CompletionServer:
    """Serve a local causal LM over the OpenAI chat/completions routes.

    ``fail_first`` lists HTTP statuses returned, in order, to the first POST requests (without
    generating), and ``delay`` sleeps before each generation: both let tests exercise a client's
    retries and timeouts against a real server.
    """

    def __init__(self, model: str | ModelSpec, *, host: str = "127.0.0.1", port: int = 0,
                 device: str = "cpu", dtype: str = "auto", served_name: str | None = None,
                 api_key: str | None = None, fail_first: Sequence[int] = (),
                 delay: float = 0.0, verbose: bool = False) -> None:
        self.httpd = listen(host, port, _handler_for(self))  # a busy port: before the model loads
        try:
            spec = model if isinstance(model, ModelSpec) else resolve_model(model)
            self.chat = TransformersBackend(spec, device=device, dtype=dtype, prompt_form="chat")
            self.plain = TransformersBackend(spec, device=device, dtype=dtype,
                                             prompt_form="completion", model=self.chat.model,
                                             tokenizer=self.chat.tokenizer)
        except BaseException:
            self.httpd.server_close()
            raise
        self.spec = spec
        self.served_name = served_name or (Path(spec.model_id).name if spec.source == "local"
                                           else spec.model_id)
        self.api_key = api_key
        self.delay = delay
        self.verbose = verbose
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being answered at once (bounded-concurrency checks)
        self._faults = list(fail_first)
        self._count_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stopped = False

    @property
    def url(self) -> str:
        """Base URL for clients, ending in ``/v1``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "CompletionServer":
        """Serve in a background thread (returns at once)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                        name="medsyn-serve")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: new connections are refused, open ones are dropped without an answer
        (as when a server goes down), requests being answered finish."""
        self.stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "CompletionServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling (called from handler threads) ------------------------------------
    def next_fault(self) -> int | None:
        with self._count_lock:
            self.requests += 1
            return self._faults.pop(0) if self._faults else None

    def complete(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one request body (OpenAI fields) for route ``chat`` or ``text``."""
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._complete(route, body)
        finally:
            with self._count_lock:
                self.in_flight -= 1

    def _complete(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        decoding = _decoding(body)
        if route == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(
                    isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
                raise ParameterError("'messages' must be a non-empty list of {role, content}")
            messages = [{"role": str(m.get("role", "user")), "content": m["content"]}
                        for m in messages]
            text = render_chat(self.chat.tokenizer, messages)
            prompt = Prompt("request", text=text, messages=messages,
                            echoes=(text, messages[-1]["content"]))
            generator = self.chat if getattr(self.chat.tokenizer, "chat_template", None) else self.plain
        else:
            text = body.get("prompt")
            if isinstance(text, list) and len(text) == 1:
                text = text[0]
            if not isinstance(text, str):
                raise ParameterError("'prompt' must be a string")
            prompt = Prompt("request", text=text, echoes=(text,))
            generator = self.plain
        if self.delay:
            time.sleep(self.delay)
        with self._model_lock:
            completion = generator.generate_batch([prompt], decoding)[0]
        reason = "length" if completion.finish_reason == "length" else "stop"
        usage = {"prompt_tokens": completion.prompt_tokens,
                 "completion_tokens": completion.completion_tokens,
                 "total_tokens": (completion.prompt_tokens or 0) + (completion.completion_tokens or 0)}
        created = int(time.time())
        if route == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": completion.text},
                      "finish_reason": reason}
            kind = "chat.completion"
        else:
            choice = {"index": 0, "text": completion.text, "finish_reason": reason}
            kind = "text_completion"
        return {"id": f"cmpl-{uuid.uuid4().hex[:16]}", "object": kind, "created": created,
                "model": self.served_name, "choices": [choice], "usage": usage}


def _decoding(body: dict[str, Any]) -> Decoding:
    """OpenAI request fields → :class:`Decoding` (OpenAI defaults where absent)."""
    try:
        stop = body.get("stop") or ()
        if isinstance(stop, str):
            stop = (stop,)
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens")) or 256
        return Decoding(max_new_tokens=int(max_tokens),
                        temperature=float(body.get("temperature", 1.0)),
                        top_p=float(body.get("top_p", 1.0)),
                        repetition_penalty=float(body.get("repetition_penalty", 1.0)),
                        seed=int(body.get("seed") or 0),
                        min_new_tokens=int(body.get("min_tokens") or 0),
                        stop=tuple(str(s) for s in stop)).validate()
    except (TypeError, ValueError) as error:
        raise ParameterError(f"bad decoding parameter ({error})") from None


def _handler_for(server: CompletionServer) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``server`` (long: it holds every route)."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if server.verbose:
                super().log_message(format, *args)

        def _send(self, status: int, payload: dict[str, Any],
                  headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str = "invalid_request_error",
                   headers: dict[str, str] | None = None) -> None:
            self._send(status, {"error": {"message": message, "type": kind}}, headers)

        def _authorised(self) -> bool:
            if not server.api_key:
                return True
            return self.headers.get("Authorization", "") == f"Bearer {server.api_key}"

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [
                    {"id": server.served_name, "object": "model", "owned_by": "medsyn"}]})
            elif self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}", "not_found")

        def do_POST(self) -> None:  # noqa: N802
            if server.stopped:  # gone: drop the connection without an answer
                self.close_connection = True
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.rstrip("/")
            routes = {"/v1/chat/completions": "chat", "/chat/completions": "chat",
                      "/v1/completions": "text", "/completions": "text"}
            if path not in routes:
                self._error(404, f"no route {self.path}", "not_found")
                return
            if not self._authorised():
                self._error(401, "invalid API key", "authentication_error")
                return
            fault = server.next_fault()
            if fault:
                phrase = HTTPStatus(fault).phrase if fault in HTTPStatus._value2member_map_ else "error"
                self._error(fault, f"injected {phrase}", "server_error",
                            headers={"Retry-After": "0"} if fault == 429 else None)
                return
            try:
                body = json.loads(raw.decode("utf-8") or "{}")
                if not isinstance(body, dict):
                    raise ValueError("body is not a JSON object")
            except (UnicodeDecodeError, ValueError) as error:
                self._error(400, f"request body is not JSON ({error})")
                return
            try:
                payload = server.complete(routes[path], body)
            except MedsynError as error:
                self._error(400, str(error))
                return
            except Exception as error:  # keep serving; tell the client what broke
                self._error(500, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}",
                            "server_error")
                return
            self._send(200, payload)

    return Handler
