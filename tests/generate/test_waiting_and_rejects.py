"""Issue 24: a request to an endpoint that never answers says on stderr that it waits (bounded),
and a complete store line that is not UTF-8 is set aside, counted and named, not dropped."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from medsyn_utils.generate import store as store_mod
from medsyn_utils.generate.backends import openai as openai_mod
from medsyn_utils.generate.backends.base import Decoding, Prompt
from medsyn_utils.generate.models import api_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "score"))
from score_helpers import make_store, make_tasks  # noqa: E402


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never answers; stops by itself."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    held, stop = [], threading.Event()

    def accept() -> None:
        deadline = time.monotonic() + 60  # bounded even if the test hangs
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


def test_a_silent_endpoint_says_it_waits_and_gives_up_in_bounded_time(silent_server, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(openai_mod, "WAIT_NOTICE_S", 0.3)
    backend = openai_mod.OpenAIBackend(api_model("m"), base_url=silent_server, timeout=1.0,
                                       max_retries=1, backoff=0.1, max_backoff=0.1)
    start = time.monotonic()
    [result] = backend.generate([Prompt("t1", messages=[{"role": "user", "content": "x"}],
                                        echoes=("x",))], Decoding())
    waited = time.monotonic() - start
    backend.close()
    bound = openai_mod.worst_wait_seconds(1.0, 1, 0.1, 0.1)
    assert result.failed and "timed out" in result.error
    assert waited <= bound + 2.0, (waited, bound)
    err = capsys.readouterr().err
    url = f"{silent_server}/chat/completions"
    assert f"waiting for {url}: no answer after" in err
    assert "attempt 1 of 2" in err and "attempt 2 of 2" in err


def test_the_wait_bound_is_stated_for_the_help():
    worst = openai_mod.worst_wait_seconds()
    assert worst == 6 * 120 + (1 + 2 + 4 + 8 + 16)
    assert f"at most {worst:.0f} s" in openai_mod.WAIT_HELP
    assert f"after {openai_mod.WAIT_NOTICE_S:g} s" in openai_mod.WAIT_HELP


def _store_with_bad_last_line(folder: Path) -> Path:
    from medsyn_utils.tasks.table import write_task_table

    write_task_table(make_tasks(), folder)
    path = make_store(folder / "generations.jsonl", ["Жалобы на кашель.", "Жалобы на насморк."])
    with path.open("ab") as handle:
        handle.write(b"\xff\xfe\n")
    return path


def test_a_complete_non_utf8_line_is_set_aside_not_cut(tmp_path):
    path = _store_with_bad_last_line(tmp_path)
    before = path.read_bytes()
    rejected: list[int] = []
    assert len(store_mod.read_records(path, rejected)) == 2 and rejected == [3]
    with store_mod.GenerationStore(path) as store:
        assert store.rejected_lines == [3] and store.repaired_bytes == 0
    assert path.read_bytes() == before  # kept aside, in place: nothing cut


def test_torn_last_line_stays_torn(tmp_path):
    path = _store_with_bad_last_line(tmp_path)
    with path.open("ab") as handle:
        handle.write(b'{"task_id": "t9", "resp')  # no newline: a write cut short
    rejected: list[int] = []
    assert len(store_mod.read_records(path, rejected)) == 2 and rejected == [3]
    with store_mod.GenerationStore(path) as store:
        assert store.repaired_bytes == len(b'{"task_id": "t9", "resp')


def test_the_scoring_summary_names_the_line(tmp_path, tiny_encoder_dir, capsys):
    from medsyn_utils.cli.app import main
    from medsyn_utils.score.layout import load_scoring_input

    path = _store_with_bad_last_line(tmp_path)
    scoring_input = load_scoring_input(path)
    assert len(scoring_input.table) == 2 and scoring_input.rejected_lines == [3]
    assert "set aside 1 store line(s) that are not UTF-8 text (line 3)" in scoring_input.describe()
    status = main(["score", "--in", str(path), "--out", str(tmp_path / "s.csv"), "--encoder",
                   str(tiny_encoder_dir), "--layer", "3", "--quiet"])
    assert status == 0
    assert "set aside 1 store line(s) that are not UTF-8 text (line 3)" in capsys.readouterr().err
