"""A pool of OpenAI-compatible servers (issue 14 item 3): three local servers on loopback, one
stopped mid-run; every task ends with exactly one note and the report says who wrote what."""

from __future__ import annotations

import threading

import pytest

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.generate.backends.openai import parse_base_urls
from medsyn_utils.generate.serve import CompletionServer
from medsyn_utils.generate.stage import generate_store, stage_metrics
from medsyn_utils.generate.store import read_records

from generation_helpers import make_tasks

FAST = dict(max_new_tokens=4, temperature=0.0, progress=False, backoff=0.01, model="tiny",
            backend="openai", max_failed_share=1.0)


class _StopsAfter(CompletionServer):
    """A server that goes down (as `medsyn serve` killed) after answering ``after`` requests."""

    def __init__(self, model, after: int, **kwargs):
        super().__init__(model, **kwargs)
        self.after = after
        self.answered = 0

    def complete(self, route, body):
        payload = super().complete(route, body)
        with self._count_lock:
            self.answered += 1
            if self.answered == self.after:
                threading.Thread(target=self.stop, daemon=True).start()
        return payload


def test_pool_survives_a_server_stopped_mid_run(tiny_lm_dir, tmp_path):
    tasks = make_tasks(12)
    path = tmp_path / "g.jsonl"
    servers = [CompletionServer(str(tiny_lm_dir), served_name="tiny", delay=0.05).start(),
               _StopsAfter(str(tiny_lm_dir), after=2, served_name="tiny", delay=0.05).start(),
               CompletionServer(str(tiny_lm_dir), served_name="tiny", delay=0.05).start()]
    try:
        report = generate_store(tasks, path, base_url=",".join(s.url for s in servers),
                                batch_size=6, concurrency=1, max_retries=3, **FAST)
    finally:
        for server in servers:
            if not server.stopped:
                server.stop()
    records = read_records(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(records) == 12, "every task exactly once"
    assert sorted(r["task_id"] for r in records) == sorted(tasks["task_id"])
    split = report.notes_per_server
    assert sum(split.values()) == report.generated == sum(1 for r in records if not r["error"])
    assert split.get(servers[1].url) == 2, "the stopped server wrote its notes before it stopped"
    assert split.get(servers[0].url, 0) > 0 and split.get(servers[2].url, 0) > 0
    assert servers[0].max_in_flight <= 1 and servers[2].max_in_flight <= 1  # bounded per server
    assert stage_metrics(report, path)["notes_per_server"] == split


def test_pool_notes_equal_one_server_notes_under_greedy(tiny_lm_dir, tmp_path):
    tasks = make_tasks(4)
    with CompletionServer(str(tiny_lm_dir), served_name="tiny") as one, \
            CompletionServer(str(tiny_lm_dir), served_name="tiny") as two:
        single = generate_store(tasks, tmp_path / "one.jsonl", base_url=one.url, **FAST)
        pooled = generate_store(tasks, tmp_path / "pool.jsonl", base_url=[one.url, two.url],
                                concurrency=2, **FAST)
    assert single.notes_per_server == {one.url: single.generated}
    assert set(pooled.notes_per_server) <= {one.url, two.url}

    def notes(name):
        return {r["task_id"]: r["response"] for r in read_records(tmp_path / name)}

    assert notes("one.jsonl") == notes("pool.jsonl")


def test_base_url_lists():
    assert parse_base_urls("http://a:1/v1, http://b:2/v1/ http://a:1/v1") == \
        ["http://a:1/v1", "http://b:2/v1"]
    assert parse_base_urls(["http://a:1/v1"]) == ["http://a:1/v1"]
    with pytest.raises(ParameterError, match="not an http"):
        parse_base_urls("a:1/v1")
