"""kill -9 of chunked ``medsyn score`` at seeded random moments: no chunk file is ever torn, and the
re-run's table is the table of an uninterrupted run, byte for byte.

Each run is a forked child calling the ``medsyn`` entry point in-process (the imports are paid
once, in this process; the child loads the tiny encoder itself), killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.score.chunks import chunk_folder
from medsyn_utils.testing.tiny import SENTENCES

KILLS = 10
ROWS, CHUNK_ROWS = 48, 4

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                                reason="needs fork")


def _table(path: Path) -> Path:
    n = len(SENTENCES)
    pd.DataFrame({
        "idx": [f"n{i}" for i in range(ROWS)],
        "response": [f"{SENTENCES[i % n]} {SENTENCES[(i * 7) % n]}" for i in range(ROWS)],
        "symptoms": ["кашель, насморк", "головная боль, слабость"] * (ROWS // 2),
        "anamnesis": [SENTENCES[(i * 3) % n] for i in range(ROWS)],
    }).to_csv(path, index=False)
    return path


def _spawn(argv: list[str]) -> int:
    """Fork a child running ``medsyn argv``; return its pid."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 3
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import torch
            torch.set_num_threads(1)  # thread pools made by earlier tests do not survive a fork
            from medsyn_utils.cli.app import main
            status = main(argv)
        finally:
            os._exit(int(status or 0))
    return pid


def _run(argv: list[str]) -> tuple[int, float]:
    start = time.monotonic()
    _, status = os.waitpid(_spawn(argv), 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - start


def _check_chunks(folder: Path) -> int:
    """Every chunk file reads back whole (a torn one would not); returns how many there are."""
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    for file in files:
        frame = pd.read_parquet(file)
        assert 1 <= len(frame) <= CHUNK_ROWS, file
    return len(files)


def test_kill_9_at_random_moments_then_rerun_gives_the_same_table(tmp_path, tiny_encoder_dir):
    from medsyn_utils.cli.app import build_parser
    from medsyn_utils.score.scorer import NoteScorer

    build_parser()  # every command's imports, paid here once before forking: children start fast
    NoteScorer(str(tiny_encoder_dir), 3, batch_size=4, device="cpu")  # torch/transformers modules

    table = _table(tmp_path / "notes.csv")

    def argv(out: Path) -> list[str]:
        return ["score", "--in", str(table), "--out", str(out), "--encoder", str(tiny_encoder_dir),
                "--layer", "3", "--chunk-rows", str(CHUNK_ROWS), "--batch-size", "4", "--quiet",
                "--recall-threshold", "0.3", "--precision-threshold", "0.3", "--device", "cpu"]

    whole_out = tmp_path / "whole" / "scored.parquet"
    status, seconds = _run(argv(whole_out))
    assert status == 0 and whole_out.is_file()

    out = tmp_path / "killed" / "scored.parquet"
    chunks = chunk_folder(out)
    rng = np.random.default_rng(24)
    seen: list[int] = []
    # Kill moments are drawn between two bounds that close in on the chunk-writing window (often
    # the last tenth of a one-second run): a run that finished lowers the upper bound, a kill that
    # found no chunk yet raises the lower one.
    low, high = 0.05 * seconds, seconds
    for attempt in range(3 * KILLS):
        if len(seen) >= KILLS and max(seen) > 0:
            break
        pid = _spawn(argv(out))
        moment = rng.uniform(low, high)
        time.sleep(moment)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        finished = out.is_file()
        if finished:  # it finished before the kill: start over from nothing, kill sooner
            out.unlink()
            high = moment
        count = _check_chunks(chunks)
        if not finished and count == 0:  # too early: no chunk written yet, kill later
            low = moment
        if low >= high:  # the window moved (a shared machine): widen it again
            low, high = 0.5 * low, 1.5 * high
        seen.append(count)
    status, _ = _run(argv(out))
    assert status == 0
    assert not chunks.exists()  # the chunks (and any temporary file a kill left) are gone
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(whole_out))
    assert out.read_bytes() == whole_out.read_bytes()
    assert max(seen) > 0, f"no kill landed while chunks were being written: {seen}"
