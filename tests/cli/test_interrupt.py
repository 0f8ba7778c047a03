"""Ctrl-C during ``medsyn run``: one line, exit 130, no zmq/asyncio traceback, no kernel left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.notebooks
def test_ctrl_c_during_a_notebook_is_one_line(tmp_path):
    project = tmp_path / "proj"
    cells = [new_code_cell('run_dir: str = "outputs/interactive"  # run folder'),
             new_code_cell("import os, time\nfrom pathlib import Path\n"
                           "Path(run_dir).mkdir(parents=True, exist_ok=True)\n"
                           "(Path(run_dir) / 'kernel.pid').write_text(str(os.getpid()))\n"
                           "time.sleep(300)")]
    cells[0].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    (project / "notebooks").mkdir(parents=True)
    nbformat.write(nb, str(project / "notebooks" / "01_graph_exploration.ipynb"))
    (tmp_path / "p.yaml").write_text("stages: [graph]\n")
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "medsyn_utils.cli", "run", "--params", "p.yaml", "--root",
         str(project), "--out", "run", "--no-progress"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "kernel.pid").is_file():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the notebook never started"
            time.sleep(0.5)
        time.sleep(1)
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["medsyn: interrupted; finished work is kept"], err
    kernel = int((out / "kernel.pid").read_text())
    deadline = time.monotonic() + 30
    while _alive(kernel) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(kernel):
        os.kill(kernel, signal.SIGKILL)
        pytest.fail("the notebook's kernel outlived the interrupted run")
    import json
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["exit_status"] == 130
    assert manifest["stages"]["graph"]["status"] == "interrupted"


def test_ctrl_c_in_any_command_is_one_line(monkeypatch, capsys):
    import logging
    import threading

    from medsyn_utils.cli import app, data as data_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(data_cli.data, "check", lambda: interrupted(None))
    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # restored after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    try:
        assert app.main(["data", "check"]) == 130
    finally:
        logging.disable(logging.NOTSET)
    captured = capsys.readouterr()
    assert captured.err.strip() == "medsyn: interrupted; finished work is kept"
    assert captured.out == ""
