"""The resumable generation store: durable appends, torn tails, no duplicates, one writer."""

from __future__ import annotations

import json
import os

import pytest

from medsyn_utils.generate import store as store_mod
from medsyn_utils.core.errors import InputTableError
from medsyn_utils.core.schema import STORE_FIELDS
from medsyn_utils.generate.store import GenerationStore, read_records, read_store


def record(task_id: str, response: str = "Жалобы на кашель.", *, error: str | None = None,
           finish_reason: str = "stop") -> dict:
    return {"task_id": task_id, "task_fingerprint": "f" + task_id, "error": error, "model_id": "m", "model_revision": None, "adapter": None,
            "backend": "transformers", "decoding": {"max_new_tokens": 8, "seed": 0},
            "prompt": "p", "response": response, "prompt_tokens": 3, "completion_tokens": 4,
            "finish_reason": finish_reason, "seconds": 0.1, "created_at": "2024-01-01T00:00:00+00:00"}


def test_append_then_reopen_knows_done_ids(tmp_path):
    path = tmp_path / "run" / "generations.jsonl"
    with GenerationStore(path) as store:
        assert store.done == set()
        assert store.append([record("t1"), record("t2")]) == 2
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [list(json.loads(line)) for line in lines] == [list(STORE_FIELDS)] * 2
    assert "Жалобы" in lines[0]  # UTF-8 text, not \u escapes
    with GenerationStore(path) as store:
        assert store.done == {"t1", "t2"}
        assert len(store) == 2


def test_duplicates_are_skipped_within_and_across_batches(tmp_path):
    path = tmp_path / "s.jsonl"
    with GenerationStore(path) as store:
        assert store.append([record("t1"), record("t1", "second")]) == 1
        assert store.append([record("t1", "third"), record("t2")]) == 1
    records = read_records(path)
    assert [r["task_id"] for r in records] == ["t1", "t2"]
    assert records[0]["response"] == "Жалобы на кашель."


def test_torn_last_line_is_cut_and_its_task_regenerated(tmp_path):
    path = tmp_path / "s.jsonl"
    with GenerationStore(path) as store:
        store.append([record("t1"), record("t2")])
    good_size = path.stat().st_size
    with open(path, "ab") as handle:  # a write cut short by a crash
        handle.write(store_mod.encode_record(record("t3")).encode("utf-8")[:25])
    assert [r["task_id"] for r in read_records(path)] == ["t1", "t2"]  # readers ignore it
    with GenerationStore(path) as store:
        assert store.repaired_bytes == 25
        assert path.stat().st_size == good_size
        assert "t3" not in store.done
        store.append([record("t3")])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["t1", "t2", "t3"]


def test_complete_but_broken_last_line_counts_as_torn(tmp_path):
    path = tmp_path / "s.jsonl"
    with GenerationStore(path) as store:
        store.append([record("t1")])
    with open(path, "ab") as handle:
        handle.write(b'{"task_id": "t2", "resp\n')
    with GenerationStore(path) as store:
        assert store.done == {"t1"}
        assert store.repaired_bytes > 0


def test_broken_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "s.jsonl"
    lines = [store_mod.encode_record(record("t1")), "not json\n",
             store_mod.encode_record(record("t3"))]
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputTableError, match=r"line 2") as caught:
        GenerationStore(path).open()
    assert "\n" not in str(caught.value)


def test_record_missing_fields_is_refused(tmp_path):
    bad = record("t1")
    del bad["finish_reason"]
    with GenerationStore(tmp_path / "s.jsonl") as store:
        with pytest.raises(InputTableError, match="finish_reason"):
            store.append([bad])
        assert store.done == set()


def test_each_append_is_fsynced(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(store_mod.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    with GenerationStore(tmp_path / "s.jsonl") as store:
        before = len(calls)
        store.append([record("t1")])
        store.append([record("t2")])
        assert len(calls) - before == 2


def test_second_writer_is_refused_while_the_first_holds_the_store(tmp_path):
    if store_mod.fcntl is None:
        pytest.skip("no POSIX locks on this platform")
    path = tmp_path / "s.jsonl"
    with GenerationStore(path):
        with pytest.raises(InputTableError, match="another run"):
            GenerationStore(path).open()
    with GenerationStore(path) as store:  # released on close
        assert store.done == set()


def test_read_store_frame_and_missing_store(tmp_path):
    path = tmp_path / "s.jsonl"
    with pytest.raises(InputTableError, match="does not exist"):
        read_store(path)
    with GenerationStore(path) as store:
        store.append([record("t1"), record("t2")])
    frame = read_store(path)
    assert list(frame.columns) == list(STORE_FIELDS)
    assert frame["task_id"].tolist() == ["t1", "t2"]


def test_append_requires_an_open_store(tmp_path):
    with pytest.raises(InputTableError, match="not open"):
        GenerationStore(tmp_path / "s.jsonl").append([record("t1")])


def test_path_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(InputTableError, match="not a file"):
        GenerationStore(tmp_path).open()


def test_failed_record_is_kept_but_retried_and_a_later_note_takes_its_place(tmp_path):
    path = tmp_path / "s.jsonl"
    with GenerationStore(path) as store:
        failed = record("t1", "", error="the model wrote no text", finish_reason="empty")
        assert store.append([failed, record("t2")]) == 1  # one note, one failed record
    with GenerationStore(path) as store:
        assert store.done == {"t2"}, "a failed task is not done: the next run tries it again"
        assert [r["task_id"] for r in read_records(path)] == ["t1", "t2"]
        assert read_records(path)[0]["finish_reason"] == "empty"
        assert store.append([record("t1", "Кашель.")]) == 1
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3  # nothing rewritten
    notes = read_records(path)
    assert [(r["task_id"], r["response"]) for r in notes] == [("t1", "Кашель."),
                                                               ("t2", "Жалобы на кашель.")]
    with GenerationStore(path) as store:
        assert store.done == {"t1", "t2"}
        assert store.append([record("t1", "again")]) == 0
