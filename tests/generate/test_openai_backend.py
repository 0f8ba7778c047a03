"""The OpenAI-compatible backend against a real HTTP server on loopback serving a tiny model.

No client mocks: the backend speaks HTTP to :class:`medsyn_utils.generate.serve.CompletionServer`, which
runs the tiny model through the same chat template as the local backend.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from medsyn_utils.cli import app as cli
from medsyn_utils.core.errors import ModelError
from medsyn_utils.generate.stage import generate_store
from medsyn_utils.generate.serve import CompletionServer
from medsyn_utils.generate.store import read_records

from generation_helpers import make_tasks, responses

FAST = dict(max_new_tokens=10, temperature=0.0, progress=False, backoff=0.01)


@pytest.fixture(scope="module")
def server(varied_lm_dir):
    with CompletionServer(str(varied_lm_dir), served_name="tiny") as running:
        yield running


def test_api_notes_equal_local_notes_under_greedy(server, varied_lm_dir, tmp_path):
    tasks = make_tasks(5)
    report = generate_store(tasks, tmp_path / "api.jsonl", model="tiny", backend="openai",
                            base_url=server.url, batch_size=3, concurrency=2, stop=[], **FAST)
    assert report.generated == 5 and report.backend == "openai"
    generate_store(tasks, tmp_path / "local.jsonl", model=str(varied_lm_dir), batch_size=5,
                   max_new_tokens=10, temperature=0.0, progress=False, stop=[])
    assert responses(tmp_path / "api.jsonl") == responses(tmp_path / "local.jsonl")
    records = read_records(tmp_path / "api.jsonl")
    for r in records:
        assert r["backend"] == "openai" and r["model_id"] == "tiny"
        messages = json.loads(r["prompt"])  # the messages as sent
        assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
        assert r["prompt_tokens"] > 0 and r["completion_tokens"] > 0
        assert r["decoding"]["max_new_tokens"] == 10


def test_retries_with_back_off_on_429_and_5xx(varied_lm_dir, tmp_path):
    with CompletionServer(str(varied_lm_dir), fail_first=[503, 429, 500]) as flaky:
        report = generate_store(make_tasks(3), tmp_path / "s.jsonl", model="tiny",
                                backend="openai", base_url=flaky.url, concurrency=1, **FAST)
        assert report.generated == 3
        assert flaky.requests == 3 + 3  # three refused, then three answered


def test_refusal_stops_with_one_line_and_keeps_finished_notes(varied_lm_dir, tmp_path):
    path = tmp_path / "s.jsonl"
    tasks = make_tasks(4)
    with CompletionServer(str(varied_lm_dir), api_key="right") as locked:
        first = generate_store(tasks, path, model="tiny", backend="openai", base_url=locked.url,
                               api_key="right", max_tasks=2, **FAST)
        assert first.generated == 2
        with pytest.raises(ModelError, match=r"HTTP 401.*OPENAI_API_KEY") as caught:
            generate_store(tasks, path, model="tiny", backend="openai", base_url=locked.url,
                           api_key="wrong", **FAST)
    assert "\n" not in str(caught.value)
    assert len(read_records(path)) == 2, "finished notes are kept"


def test_endpoint_down_fails_after_retries(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ModelError, match=r"failed 3 times.*connection failed") as caught:
        generate_store(make_tasks(2), tmp_path / "s.jsonl", model="tiny", backend="openai",
                       base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, **FAST)
    assert "\n" not in str(caught.value)
    assert read_records(tmp_path / "s.jsonl") == []


def test_timeouts_are_retried_then_reported(varied_lm_dir, tmp_path):
    with CompletionServer(str(varied_lm_dir), delay=2.0) as slow:
        with pytest.raises(ModelError, match="timed out"):
            generate_store(make_tasks(1), tmp_path / "s.jsonl", model="tiny", backend="openai",
                           base_url=slow.url, timeout=0.2, max_retries=1, **FAST)


def test_unknown_route_is_a_clear_404(server, tmp_path):
    with pytest.raises(ModelError, match=r"HTTP 404.*base_url"):
        generate_store(make_tasks(1), tmp_path / "s.jsonl", model="tiny", backend="openai",
                       base_url=server.url.removesuffix("/v1") + "/wrong", **FAST)


def test_concurrency_is_bounded(varied_lm_dir, tmp_path):
    with CompletionServer(str(varied_lm_dir), delay=0.3) as slow:
        report = generate_store(make_tasks(6), tmp_path / "s.jsonl", model="tiny",
                                backend="openai", base_url=slow.url, batch_size=6,
                                concurrency=2, **FAST)
        assert report.generated == 6
        assert slow.max_in_flight == 2


def test_base_url_and_key_from_environment(varied_lm_dir, tmp_path, monkeypatch):
    with CompletionServer(str(varied_lm_dir), api_key="env-key") as locked:
        monkeypatch.setenv("OPENAI_BASE_URL", locked.url)
        monkeypatch.setenv("OPENAI_API_KEY", "env-key")
        report = generate_store(make_tasks(2), tmp_path / "s.jsonl", model="tiny",
                                backend="openai", **FAST)
        assert report.generated == 2


def test_completion_route_for_base_model_prompts(server, tmp_path):
    tasks = make_tasks(2)
    generate_store(tasks, tmp_path / "s.jsonl", model="tiny", backend="openai",
                   base_url=server.url, prompt_form="completion", **FAST)
    records = read_records(tmp_path / "s.jsonl")
    by_id = tasks.set_index("task_id")["completion_prompt"]
    assert all(r["prompt"] == by_id[r["task_id"]] for r in records)
    assert all(r["decoding"]["prompt_form"] == "completion" for r in records)


def test_openai_python_client_talks_to_the_server(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Жалобы на кашель."}],
        max_tokens=5, temperature=0)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 5
    assert client.models.list().data[0].id == "tiny"


def test_server_rejects_bad_requests(server):
    bad = httpx.post(f"{server.url}/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]["message"]
    empty = httpx.post(f"{server.url}/chat/completions", json={"messages": []})
    assert empty.status_code == 400 and "messages" in empty.json()["error"]["message"]
    wrong = httpx.post(f"{server.url}/chat/completions",
                       json={"messages": [{"role": "user", "content": "x"}], "top_p": 5})
    assert wrong.status_code == 400 and "top_p" in wrong.json()["error"]["message"]


def test_api_key_missing_for_openai_proper(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        generate_store(make_tasks(1), tmp_path / "s.jsonl", model="gpt-4o", backend="openai",
                       progress=False)


def test_cli_with_openai_backend(server, tmp_path, capsys):
    tasks_path = tmp_path / "tasks.parquet"
    make_tasks(2).to_parquet(tasks_path)
    code = cli.main(["generate", "--tasks", str(tasks_path), "--out", str(tmp_path / "g.jsonl"),
                     "--backend", "openai", "--model", "tiny", "--base-url", server.url,
                     "--max-new-tokens", "4", "--no-progress", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["generated"] == 2
