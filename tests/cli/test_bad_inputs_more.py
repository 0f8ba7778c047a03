"""More bad inputs (issue 24): numbers of the non-stage commands, readers of user files, the
messages that must name the thing. Each exits non-zero with one line naming the input and no
traceback, before any model loads.

Run in-process through :func:`medsyn_utils.cli.app.main`.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path

import pandas as pd
import pytest

from medsyn_utils.cli.app import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "score"))
from score_helpers import make_store, make_tasks  # noqa: E402
from test_bad_inputs import one_line  # noqa: E402  (the battery's one-line check)

from medsyn_utils.tasks.table import write_task_table  # noqa: E402


@pytest.fixture
def place(tmp_path):
    """Odd files the cases point at."""
    (tmp_path / "syntax.yaml").write_text("ift: {seed: [1\n")
    (tmp_path / "ift_list.yaml").write_text("ift: [1, 2]\n")
    (tmp_path / "ift_splits_5.yaml").write_text("ift: {splits: 5}\n")
    (tmp_path / "ift_splits_typo.yaml").write_text("ift: {splits: [trian]}\n")
    (tmp_path / "ift_seed_float.yaml").write_text("ift: {seed: 1.5}\n")
    (tmp_path / "ift_seed_nan.yaml").write_text("ift: {seed: .nan}\n")
    (tmp_path / "ift_min_words.yaml").write_text("ift: {min_words: many}\n")
    (tmp_path / "ift_top_list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "ift_unknown.yaml").write_text("ift: {sed: 1}\n")
    (tmp_path / "ift_path_number.yaml").write_text("ift: {scored_path: 5}\n")
    os.symlink(tmp_path / "loop.yaml", tmp_path / "loop.yaml")
    tasks = make_tasks()
    folder = tmp_path / "tasks"
    write_task_table(tasks, folder)
    (tmp_path / "list_line.jsonl").write_text('[1, 2, 3]\n')
    (tmp_path / "bad_line.jsonl").write_text('{"task_id": "a"}\n{"task_id": \n')
    (tmp_path / "string_line.jsonl").write_text('"just text"\n')
    csv = pd.read_csv(folder / "tasks.csv", dtype=str, keep_default_na=False)
    csv.assign(age=["thirty"] + list(csv["age"][1:])).to_csv(tmp_path / "age_text.csv", index=False)
    csv.assign(age=["1e400"] + list(csv["age"][1:])).to_csv(tmp_path / "age_huge.csv", index=False)
    csv.assign(task_id=["t000000"] * len(csv)).to_csv(tmp_path / "dup_ids.csv", index=False)
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1 not really parquet")
    (tmp_path / "garbage_tasks.parquet").write_bytes(b"\x00\x01\x02PAR1")
    make_store(tmp_path / "store.jsonl", ["Жалобы на кашель."] * 4)
    (tmp_path / "odd.jsonl").write_bytes(b'{"task_id": "x", "response": "a"}\n[1, 2]\n{"task_id": "y"}\n')
    return tmp_path


def scoring(p: Path, *extra: str) -> list[str]:
    return ["score", "--in", str(p / "store.jsonl"), "--out", str(p / "s.csv"), *extra]


def generating(p: Path, *extra: str) -> list[str]:
    return ["generate", "--tasks", str(p / "tasks" / "tasks.parquet"), "--out", str(p / "g.jsonl"),
            "--backend", "openai", "--model", "m", *extra]


# (case id, argv given the folder, text the one line must contain)
CASES = [
    # benchmark options, checked before anything loads
    ("bench-sampling-seed-negative", lambda p: ["bench", "sampling", "--seed", "-1"],
     "bench sampling --seed=-1 is out of range"),
    ("bench-sampling-seed-huge", lambda p: ["bench", "sampling", "--seed", "123456789012345678901234567890"],
     "--seed=123456789012345678901234567890 is out of range"),
    ("bench-sampling-n-loop-0", lambda p: ["bench", "sampling", "--n-loop", "0"], "--n-loop=0 is out of range"),
    ("bench-sampling-n-vectorized", lambda p: ["bench", "sampling", "--n-vectorized", "-5"],
     "--n-vectorized=-5"),
    ("bench-sampling-temperature-nan", lambda p: ["bench", "sampling", "--temperature", "nan"],
     "--temperature=nan is not a finite number"),
    ("bench-sampling-temperature-0", lambda p: ["bench", "sampling", "--temperature", "0"],
     "--temperature=0.0 is out of range: give a number > 0"),
    ("bench-downstream-n-synthetic", lambda p: ["bench", "downstream", "--n-synthetic", "0"],
     "bench downstream --n-synthetic=0"),
    ("bench-downstream-max-iter", lambda p: ["bench", "downstream", "--logreg-max-iter", "-1"],
     "--logreg-max-iter=-1"),
    ("bench-downstream-seed", lambda p: ["bench", "downstream", "--seed", "-2"], "--seed=-2"),
    ("bench-generation-tasks", lambda p: ["bench", "generation", "--tasks", "0"],
     "bench generation --tasks=0"),
    ("bench-generation-batch", lambda p: ["bench", "generation", "--batch-size", "-1"], "--batch-size=-1"),
    ("bench-generation-new-tokens", lambda p: ["bench", "generation", "--max-new-tokens", "0"],
     "--max-new-tokens=0"),
    ("bench-generation-bandwidth-inf", lambda p: ["bench", "generation", "--bandwidth-gbs", "inf"],
     "--bandwidth-gbs=inf is not a finite number"),
    ("bench-generation-threads", lambda p: ["bench", "generation", "--threads", "-1"], "--threads=-1"),
    ("bench-gpu-budget-0", lambda p: ["bench", "gpu", "--budget-s", "0"], "--budget-s=0.0 is out of range"),
    ("bench-gpu-budget-nan", lambda p: ["bench", "gpu", "--budget-s", "nan"], "--budget-s=nan"),
    ("bench-scaling-tasks", lambda p: ["bench", "scaling", "--tasks", "1"], "bench scaling --tasks=1"),
    ("bench-scoring-n", lambda p: ["bench", "scoring", "--n", "0"], "bench scoring --n=0"),
    ("bench-scoring-repeats", lambda p: ["bench", "scoring", "--repeats", "0"], "--repeats=0"),
    ("bench-scoring-layer", lambda p: ["bench", "scoring", "--layer", "0"], "--layer=0"),
    ("bench-scoring-batch-tokens", lambda p: ["bench", "scoring", "--max-batch-tokens", "0"],
     "--max-batch-tokens=0"),
    # medsyn serve: the port, before the model loads
    ("serve-port-70000", lambda p: ["serve", "--port", "70000"], "serve --port=70000 is out of range"),
    ("serve-port-negative", lambda p: ["serve", "--port", "-1"], "serve --port=-1"),
    ("serve-host-not-here", lambda p: ["serve", "--host", "203.0.113.7", "--port", "8123"],
     "cannot listen on 203.0.113.7:8123: the address is not on this machine"),
    # medsyn kg
    ("kg-top-negative", lambda p: ["kg", "symptoms", "J06", "--top", "-3"], "kg symptoms --top=-3"),
    ("kg-top-zero", lambda p: ["kg", "symptoms", "J06", "--top", "0"], "give an integer >= 1"),
    # medsyn ift export: its numbers and its params file
    ("ift-seed-negative", lambda p: ["ift", "export", "--seed", "-1", "--out", str(p / "i.jsonl")],
     "ift export --seed=-1 is out of range"),
    ("ift-params-syntax", lambda p: ["ift", "export", "--params", str(p / "syntax.yaml"), "--out",
                                     str(p / "i.jsonl")], "syntax.yaml line 2 is not valid YAML"),
    ("ift-params-ift-list", lambda p: ["ift", "export", "--params", str(p / "ift_list.yaml"), "--out",
                                       str(p / "i.jsonl")], "ift must be a mapping"),
    ("ift-params-splits-5", lambda p: ["ift", "export", "--params", str(p / "ift_splits_5.yaml"),
                                       "--out", str(p / "i.jsonl")], "splits must be a list of names, got 5"),
    ("ift-params-splits-typo", lambda p: ["ift", "export", "--params", str(p / "ift_splits_typo.yaml"),
                                          "--out", str(p / "i.jsonl")], "unknown split 'trian'"),
    ("ift-params-seed-float", lambda p: ["ift", "export", "--params", str(p / "ift_seed_float.yaml"),
                                         "--out", str(p / "i.jsonl")], "seed=1.5 is not an integer"),
    ("ift-params-seed-nan", lambda p: ["ift", "export", "--params", str(p / "ift_seed_nan.yaml"),
                                       "--out", str(p / "i.jsonl")], "seed=nan"),
    ("ift-params-min-words", lambda p: ["ift", "export", "--params", str(p / "ift_min_words.yaml"),
                                        "--out", str(p / "i.jsonl")], "min_words='many' is not an integer"),
    ("ift-params-top-list", lambda p: ["ift", "export", "--params", str(p / "ift_top_list.yaml"),
                                       "--out", str(p / "i.jsonl")], "must be a mapping of IFT options"),
    ("ift-params-unknown", lambda p: ["ift", "export", "--params", str(p / "ift_unknown.yaml"),
                                      "--out", str(p / "i.jsonl")], "unknown IFT option(s) ['sed']"),
    ("ift-params-path-number", lambda p: ["ift", "export", "--params", str(p / "ift_path_number.yaml"),
                                          "--out", str(p / "i.jsonl")], "scored_path must be a path"),
    ("ift-params-loop", lambda p: ["ift", "export", "--params", str(p / "loop.yaml"), "--out",
                                   str(p / "i.jsonl")], "loop.yaml cannot be read: a symlink loop"),
    ("ift-params-missing", lambda p: ["ift", "export", "--params", str(p / "nope.yaml"), "--out",
                                      str(p / "i.jsonl")], "nope.yaml does not exist"),
    ("tasks-params-loop", lambda p: ["tasks", "--params", str(p / "loop.yaml"), "--out", str(p / "t")],
     "loop.yaml cannot be read: a symlink loop"),
    ("run-params-loop", lambda p: ["run", "--params", str(p / "loop.yaml"), "--out", str(p / "r")],
     "loop.yaml cannot be read: a symlink loop"),
    # task tables a user made
    ("tasks-jsonl-list-line", lambda p: ["generate", "--tasks", str(p / "list_line.jsonl"), "--out",
                                         str(p / "g.jsonl")], "list_line.jsonl line 1 is a JSON list"),
    ("tasks-jsonl-string-line", lambda p: ["generate", "--tasks", str(p / "string_line.jsonl"), "--out",
                                           str(p / "g.jsonl")], "string_line.jsonl line 1 is a JSON str"),
    ("tasks-jsonl-broken-line", lambda p: ["generate", "--tasks", str(p / "bad_line.jsonl"), "--out",
                                           str(p / "g.jsonl")], "bad_line.jsonl line 2 is not JSON"),
    ("tasks-age-text", lambda p: ["generate", "--tasks", str(p / "age_text.csv"), "--out",
                                  str(p / "g.jsonl")], "column 'age' row 1 is 'thirty', not an integer"),
    ("tasks-age-huge", lambda p: ["generate", "--tasks", str(p / "age_huge.csv"), "--out",
                                  str(p / "g.jsonl")], "column 'age' row 1"),
    ("tasks-duplicated-id", lambda p: ["generate", "--tasks", str(p / "dup_ids.csv"), "--out",
                                       str(p / "g.jsonl")], "duplicated task id 't000000'"),
    ("tasks-garbage-parquet", lambda p: ["generate", "--tasks", str(p / "garbage_tasks.parquet"),
                                         "--out", str(p / "g.jsonl")], "garbage_tasks.parquet cannot be read"),
    ("score-tasks-duplicated-id", lambda p: scoring(p, "--tasks", str(p / "dup_ids.csv")),
     "duplicated task id 't000000'"),
    ("score-tasks-age-text", lambda p: scoring(p, "--tasks", str(p / "age_text.csv")), "column 'age'"),
    ("score-garbage-parquet", lambda p: ["score", "--in", str(p / "garbage.parquet"), "--out",
                                         str(p / "s.csv")], "garbage.parquet cannot be read"),
    ("score-store-list-line", lambda p: ["score", "--in", str(p / "odd.jsonl"), "--out",
                                         str(p / "s.csv")], "odd.jsonl line 2 is not a JSON record"),
    ("downstream-garbage-parquet", lambda p: ["downstream", "--synthetic", str(p / "garbage.parquet"),
                                              "--out", str(p / "d")], "garbage.parquet"),
    # base URLs of an OpenAI-compatible endpoint
    ("base-url-ipv6-open", lambda p: generating(p, "--base-url", "http://[::1/v1"),
     "base_url http://[::1/v1: an IPv6 address is not closed"),
    ("base-url-port-99999", lambda p: generating(p, "--base-url", "http://127.0.0.1:99999/v1"),
     "http://127.0.0.1:99999/v1: the port is not a number from 1 to 65535"),
    ("base-url-port-text", lambda p: generating(p, "--base-url", "http://127.0.0.1:abc/v1"),
     "127.0.0.1:abc/v1: the port is not a number"),
    ("base-url-no-host", lambda p: generating(p, "--base-url", "http:///v1"), "http:///v1: no host"),
    ("base-url-space", lambda p: generating(p, "--base-url", "http://exa mple.org/v1,"),
     "base_url 'mple.org/v1' is not an http(s) address"),
]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(place, capsys, argv, expected):
    try:
        status = main(argv(place))
    except SystemExit as stop:
        status = stop.code
    assert status not in (0, None)
    line = one_line(capsys.readouterr().err)
    assert expected in line, line
    assert not (place / "g.jsonl").exists() or (place / "g.jsonl").stat().st_size == 0


def test_battery_has_forty_new_cases():
    assert len(CASES) >= 40


def test_busy_port_is_named_before_the_model_loads(capsys, monkeypatch):
    from medsyn_utils.generate import serve

    loaded = []
    monkeypatch.setattr(serve, "resolve_model", lambda *a, **k: loaded.append(a))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in line
    assert not loaded


def test_disk_full_names_the_file(tmp_path, monkeypatch):
    """ENOSPC while writing names the file, through the kit's writer and the CLI's one line."""
    from medsyn_utils.cli.app import os_error_line
    from medsyn_utils.core import provenance

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(provenance.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        provenance.write_atomic(tmp_path / "out.csv", "a,b\n")
    line = os_error_line(caught.value)
    assert line.startswith(f"{tmp_path / 'out.csv'}: no space left on the device")
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_disk_full_without_a_file_names_the_outputs():
    import argparse

    from medsyn_utils.cli.app import os_error_line

    args = argparse.Namespace(out="/runs/x/scored.csv")
    line = os_error_line(OSError(errno.ENOSPC, "No space left on device"), args)
    assert "--out /runs/x/scored.csv" in line and "no space left" in line


def test_disk_full_in_the_store_names_the_store(tmp_path, monkeypatch):
    from medsyn_utils.generate import store as store_mod

    record = json.loads(make_store(tmp_path / "one.jsonl", ["x"]).read_text().splitlines()[0])
    with store_mod.GenerationStore(tmp_path / "s.jsonl") as store:
        monkeypatch.setattr(store_mod.os, "write",
                            lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        with pytest.raises(OSError) as caught:
            store.append([record])
    assert caught.value.filename == str(tmp_path / "s.jsonl")


def test_kg_top_shows_what_it_cuts(capsys, data_dir):
    assert main(["kg", "symptoms", "J06", "--top", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "symptoms, the first 3 shown" in out[0]
    assert len(out) == 1 + 1 + 3  # header, column names, three rows
