"""Notes bound to their tasks (fingerprints, --force) and failed notes (issue 11 items 2 and 3)."""

from __future__ import annotations

import json

import pytest

from medsyn_utils.cli import app as cli
from medsyn_utils.core.artefacts import check_fingerprints, task_fingerprint
from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.generate.serve import CompletionServer
from medsyn_utils.generate.stage import generate_store
from medsyn_utils.generate.store import read_records

from generation_helpers import make_tasks

TINY = dict(max_new_tokens=4, temperature=0.0, device="cpu", prompt_form="chat", progress=False,
            max_failed_share=1.0)


def test_every_note_carries_its_task_fingerprint(tiny_lm_dir, tmp_path):
    tasks = make_tasks(3)
    path = tmp_path / "g.jsonl"
    generate_store(tasks, path, model=str(tiny_lm_dir), batch_size=3, **TINY)
    records = read_records(path)
    by_id = {row["task_id"]: row for row in tasks.to_dict("records")}
    assert [r["task_fingerprint"] for r in records] == \
        [task_fingerprint(by_id[r["task_id"]]) for r in records]
    check_fingerprints(records, tasks)  # the scoring stage's check accepts them


def test_store_of_other_tasks_is_refused_then_set_aside_with_force(tiny_lm_dir, tmp_path):
    path = tmp_path / "generations.jsonl"
    generate_store(make_tasks(2), path, model=str(tiny_lm_dir), batch_size=2, **TINY)
    before = path.read_bytes()
    changed = make_tasks(2)
    changed.loc[0, "user_prompt"] = "Жалобы: совсем другая задача."
    with pytest.raises(ParameterError, match=r"1 note\(s\) written for other tasks.*t000.*--force") \
            as caught:
        generate_store(changed, path, model=str(tiny_lm_dir), batch_size=2, **TINY)
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == before, "nothing lost, nothing mixed in"

    report = generate_store(changed, path, model=str(tiny_lm_dir), batch_size=2, force=True,
                            **TINY)
    aside = [p for p in tmp_path.glob("generations.*.jsonl")]
    assert len(aside) == 1 and aside[0].read_bytes() == before, "the old store is kept aside"
    assert report.set_aside == str(aside[0]) and report.already_done == 0
    assert {r["task_fingerprint"] for r in read_records(path)} == \
        {task_fingerprint(row) for row in changed.to_dict("records")}


def test_resume_skips_only_tasks_whose_fingerprint_matches(tiny_lm_dir, tmp_path):
    path = tmp_path / "g.jsonl"
    tasks = make_tasks(3)
    generate_store(tasks, path, model=str(tiny_lm_dir), max_tasks=2, batch_size=2, **TINY)
    report = generate_store(tasks, path, model=str(tiny_lm_dir), batch_size=2, **TINY)
    assert report.already_done == 2 and report.generated + report.failed == 1
    assert len(read_records(path)) == 3


def test_cli_refuses_a_foreign_store_in_one_line_and_force_restarts(tiny_lm_dir, tmp_path, capsys):
    tasks_path = tmp_path / "tasks.parquet"
    make_tasks(2).to_parquet(tasks_path)
    out = tmp_path / "g.jsonl"
    common = ["generate", "--tasks", str(tasks_path), "--out", str(out), "--model",
              str(tiny_lm_dir), "--max-new-tokens", "3", "--temperature", "0", "--device", "cpu",
              "--prompt-form", "chat", "--no-progress", "--max-failed-share", "1", "--json"]
    assert cli.main(common) == 0
    capsys.readouterr()
    other = make_tasks(2)
    other["user_prompt"] = other["user_prompt"] + " Ещё."
    other.to_parquet(tasks_path)
    assert cli.main(common) != 0
    captured = capsys.readouterr()
    message = captured.err.strip().splitlines()
    assert len(message) == 1 and "--force" in message[0] and "Traceback" not in captured.err
    assert cli.main(common + ["--force"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["set_aside"], "stdout holds only the JSON report"
    assert "set aside" in captured.err
    assert len(list(tmp_path.glob("g.*.jsonl"))) == 1


# --------------------------------------------------------------------------- failed notes

class _Scripted(CompletionServer):
    """A real server whose answers' ``content`` is replaced by scripted values."""

    def __init__(self, model, contents, **kwargs):
        super().__init__(model, **kwargs)
        self.contents = list(contents)

    def complete(self, route, body):
        payload = super().complete(route, body)
        with self._count_lock:
            value = self.contents.pop(0) if self.contents else "Кашель три дня."
        payload["choices"][0]["message"]["content"] = value
        return payload


FAST = dict(max_new_tokens=4, temperature=0.0, progress=False, backoff=0.01, model="tiny",
            backend="openai", concurrency=1)


def test_empty_and_null_answers_are_asked_again(tiny_lm_dir, tmp_path):
    with _Scripted(str(tiny_lm_dir), ["", None]) as server:
        report = generate_store(make_tasks(1), tmp_path / "g.jsonl", base_url=server.url, **FAST)
        assert server.requests == 3  # empty, null, then a note
    [note] = read_records(tmp_path / "g.jsonl")
    assert note["response"] == "Кашель три дня." and note["error"] is None
    assert report.generated == 1 and report.failed == 0


@pytest.mark.parametrize("content", [["a", "list"], {"text": "x"}, 42])
def test_non_text_content_is_a_recorded_failure_not_a_traceback(tiny_lm_dir, tmp_path, content):
    path = tmp_path / "g.jsonl"
    with _Scripted(str(tiny_lm_dir), [content] * 3) as server:
        with pytest.raises(ModelError, match=r"1 of 2 notes .* failed \(error: 1.*max_failed_share"):
            generate_store(make_tasks(2), path, base_url=server.url, empty_retries=2, **FAST)
    records = {r["task_id"]: r for r in read_records(path)}
    failed = [r for r in records.values() if r["finish_reason"] == "error"]
    assert len(failed) == 1 and "not text" in failed[0]["error"] and failed[0]["response"] == ""
    assert len(records) == 2, "the good note is kept"


def test_failed_share_within_the_limit_passes_and_failed_tasks_are_retried(tiny_lm_dir, tmp_path):
    path = tmp_path / "g.jsonl"
    with _Scripted(str(tiny_lm_dir), [None] * 3) as server:
        report = generate_store(make_tasks(2), path, base_url=server.url, empty_retries=2,
                                max_failed_share=0.5, **FAST)
        assert report.failed == 1 and report.generated == 1
        failed = [r for r in read_records(path) if r["finish_reason"] == "empty"]
        assert len(failed) == 1 and "null" in failed[0]["error"]
        again = generate_store(make_tasks(2), path, base_url=server.url, **FAST)
    assert again.already_done == 1 and again.generated == 1
    assert all(r["error"] is None and r["response"] for r in read_records(path))
