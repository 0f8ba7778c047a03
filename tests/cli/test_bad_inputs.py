"""A battery of bad inputs to ``medsyn`` and ``medsyn run``: each exits non-zero with one line
naming the input, never a traceback, and nothing runs on wrong data.

Run in-process through :func:`medsyn_utils.cli.app.main` (a few as subprocesses at the end).
Cases that need other stages' commands (score, generate, downstream, ift) live with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from medsyn_utils.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params" / "smoke.yaml"


@pytest.fixture
def place(tmp_path):
    """Files every case may point at: good, broken and odd inputs."""
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "latin1.yaml").write_bytes("common: {seed: 1}  # r\xe9sum\xe9\n".encode("latin-1"))
    (tmp_path / "binary.yaml").write_bytes(bytes(range(128, 256)) * 4)
    (tmp_path / "bad.yaml").write_text("generation: {batch_size: 4\n")
    (tmp_path / "list.yaml").write_text("- graph\n- tasks\n")
    (tmp_path / "typo.yaml").write_text("generaton: {batch_size: 4}\n")
    (tmp_path / "stage_list.yaml").write_text("generation: [1, 2]\n")
    (tmp_path / "stages_text.yaml").write_text("stages: graph\n")
    (tmp_path / "stages_bad.yaml").write_text("stages: [graph, sorting]\n")
    (tmp_path / "common_run_dir.yaml").write_text("common: {run_dir: x}\n")
    (tmp_path / "stage_run_dir.yaml").write_text("tasks: {run_dir: x}\n")
    (tmp_path / "unknown_param.yaml").write_text("generation: {batchsize: 4}\n")
    (tmp_path / "unknown_common.yaml").write_text("common: {sed: 4}\n")
    (tmp_path / "ok.yaml").write_text("common: {seed: 0}\n")
    (tmp_path / "tasks_latin1.yaml").write_bytes("tasks: {n: 2}  # r\xe9sum\xe9\n".encode("latin-1"))
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("response,symptoms,anamnesis\n")
    (tmp_path / "empty_project" / "notebooks").mkdir(parents=True)
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "untagged.ipynb"))
    (tmp_path / "broken.ipynb").write_text("{ not json")
    return tmp_path


def run_args(place: Path, *extra: str, params: str | None = None) -> list[str]:
    return ["run", "--params", params or str(place / "ok.yaml"), "--root", str(ROOT),
            "--out", str(place / "run"), "--no-progress", *extra]


# (case id, argv given the folder, text the one line must contain)
CASES = [
    # the parameter file
    ("params-missing", lambda p: run_args(p, params=str(p / "nope.yaml")), "nope.yaml does not exist"),
    ("params-folder", lambda p: run_args(p, params=str(p / "folder")), "folder is a folder"),
    ("params-latin1", lambda p: run_args(p, params=str(p / "latin1.yaml")), "latin1.yaml is not UTF-8"),
    ("params-binary", lambda p: run_args(p, params=str(p / "binary.yaml")), "binary.yaml is not UTF-8"),
    ("params-bad-yaml", lambda p: run_args(p, params=str(p / "bad.yaml")), "bad.yaml line"),
    ("params-list", lambda p: run_args(p, params=str(p / "list.yaml")), "list.yaml must be a mapping"),
    ("params-typo-key", lambda p: run_args(p, params=str(p / "typo.yaml")), "unknown top-level key 'generaton'"),
    ("params-stage-not-mapping", lambda p: run_args(p, params=str(p / "stage_list.yaml")),
     "generation must be a mapping"),
    ("params-stages-text", lambda p: run_args(p, params=str(p / "stages_text.yaml")), "stages must be a list"),
    ("params-stages-unknown", lambda p: run_args(p, params=str(p / "stages_bad.yaml")), "unknown stage 'sorting'"),
    ("params-common-run-dir", lambda p: run_args(p, params=str(p / "common_run_dir.yaml")),
     "common.run_dir is set by the runner"),
    ("params-stage-run-dir", lambda p: run_args(p, params=str(p / "stage_run_dir.yaml")),
     "tasks.run_dir is set by the runner"),
    ("params-unknown-param", lambda p: run_args(p, params=str(p / "unknown_param.yaml")),
     "unknown parameter generation.batchsize"),
    ("params-unknown-common", lambda p: run_args(p, params=str(p / "unknown_common.yaml")),
     "unknown common parameter 'sed'"),
    # --set and --only
    ("set-no-equals", lambda p: run_args(p, "--set", "nokey"), "--set 'nokey' must look like"),
    ("set-run-dir", lambda p: run_args(p, "--set", "run_dir=x"), "chosen with --out"),
    ("set-stages", lambda p: run_args(p, "--set", "stages=[graph]"), "choose stages with --only"),
    ("set-unknown-section", lambda p: run_args(p, "--set", "sorting.n=1"), "unknown section 'sorting'"),
    ("set-wrong-type", lambda p: run_args(p, "--set", "generation.batch_size=many"),
     "generation.batch_size must be int"),
    ("set-empty-int", lambda p: run_args(p, "--set", "generation.batch_size="),
     "generation.batch_size must be int"),
    ("set-out-of-range", lambda p: run_args(p, "--set", "generation.temperature=9"),
     "generation.temperature=9.0 is not accepted: use a finite number in [0..5]"),
    ("set-bad-choice", lambda p: run_args(p, "--set", "generation.backend=magic"),
     "generation.backend='magic' is not accepted: use one of transformers|openai|vllm"),
    ("set-unknown-param", lambda p: run_args(p, "--set", "scoring.thresold=1"),
     "unknown parameter scoring.thresold"),
    ("only-unknown", lambda p: run_args(p, "--only", "plots"), "--only: unknown stage 'plots'"),
    # folders
    ("out-is-file", lambda p: run_args(p)[:-3] + ["--out", str(p / "a_file"), "--no-progress"],
     "a_file is a file"),
    ("out-under-file", lambda p: run_args(p)[:-3] + ["--out", str(p / "a_file" / "run"), "--no-progress"],
     "a_file is a file, not a folder"),
    ("root-empty", lambda p: ["run", "--params", str(p / "ok.yaml"), "--root", str(p / "empty_project"),
                              "--out", str(p / "run")], "holds none of the stage notebooks"),
    ("root-missing", lambda p: ["run", "--params", str(p / "ok.yaml"), "--root", str(p / "nowhere"),
                                "--out", str(p / "run")], "nowhere holds none of the stage notebooks"),
    # missing inputs name the stage that makes them
    ("input-scoring", lambda p: run_args(p, "--only", "scoring"),
     "no generations.jsonl in {run}: run the generation stage first"),
    ("input-generation", lambda p: run_args(p, "--only", "generation"),
     "no tasks.parquet in {run}: run the tasks stage first"),
    ("input-analysis", lambda p: run_args(p, "--only", "analysis"),
     "no scored.parquet in {run}: run the scoring stage first"),
    ("input-downstream", lambda p: run_args(p, "--only", "downstream"),
     "no scored.parquet in {run}: run the scoring stage first"),
    ("input-analysis-downstream", lambda p: run_args(p, "--only", "analysis,downstream"),
     "no scored.parquet in {run}"),
    ("input-path-missing", lambda p: run_args(p, "--only", "scoring", "--set",
                                              f"scoring.input_path={p / 'gone.jsonl'}"),
     "scoring.input_path="),
    ("input-tasks-path-missing", lambda p: run_args(p, "--only", "generation", "--set",
                                                    f"generation.tasks_path={p / 'gone.parquet'}"),
     "gone.parquet does not exist"),
    # medsyn params
    ("params-cmd-unknown", lambda p: ["params", str(p / "nope.ipynb")], "nope.ipynb does not exist"),
    ("params-cmd-untagged", lambda p: ["params", str(p / "untagged.ipynb")],
     "untagged.ipynb has no cell tagged 'parameters'"),
    ("params-cmd-broken", lambda p: ["params", str(p / "broken.ipynb")], "broken.ipynb cannot be read"),
    # other commands, through the same entry point
    ("tasks-params-latin1", lambda p: ["tasks", "--params", str(p / "tasks_latin1.yaml"), "--out",
                                       str(p / "t")], "tasks_latin1.yaml"),
    ("ift-params-latin1", lambda p: ["ift", "export", "--params", str(p / "tasks_latin1.yaml"),
                                     "--out", str(p / "i.jsonl")], "tasks_latin1.yaml"),
    ("tasks-out-under-file", lambda p: ["tasks", "--n", "2", "--seed", "0", "--out",
                                        str(p / "a_file" / "t")], "a_file is a file, not a folder"),
    ("kg-bad-code", lambda p: ["kg", "symptoms", "XYZ99"], "'XYZ99'"),
    ("score-missing-input", lambda p: ["score", "--in", str(p / "gone.jsonl"), "--out",
                                       str(p / "s.csv")], "gone.jsonl does not exist"),
    ("score-header-only", lambda p: ["score", "--in", str(p / "header.csv"), "--out",
                                     str(p / "s.csv")], "header.csv has no rows"),
    ("score-empty-csv", lambda p: ["score", "--in", str(p / "empty.csv"), "--out",
                                   str(p / "s.csv")], "empty.csv"),
    ("downstream-empty-csv", lambda p: ["downstream", "--synthetic", str(p / "empty.csv"), "--out",
                                        str(p / "d")], "empty.csv"),
    ("generate-empty-tasks", lambda p: ["generate", "--tasks", str(p / "empty.csv"), "--out",
                                        str(p / "g.jsonl")], "empty.csv"),
    # the command line itself
    ("argv-no-params", lambda p: ["run"], "--params"),
    ("argv-unknown-command", lambda p: ["rnu"], "invalid choice: 'rnu'"),
    ("argv-unknown-option", lambda p: run_args(p, "--bogus"), "unrecognized arguments: --bogus"),
    ("argv-data-no-action", lambda p: ["data"], "ACTION"),
    ("argv-bad-int", lambda p: ["kg", "symptoms", "J06", "--top", "many"], "--top: invalid int value"),
]


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(place, capsys, argv, expected):
    try:
        status = main(argv(place))
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    assert status not in (0, None)
    line = one_line(capsys.readouterr().err)
    assert expected.format(run=place / "run") in line
    assert not (place / "run" / "manifest.json").exists()  # nothing ran


def test_battery_is_large_enough():
    assert len(CASES) + len(ENV_CASES) + 3 >= 40  # + the subprocess cases below


# ----------------------------------------------------------------------------- the environment

ENV_CASES = [
    ("data-dir-missing", {"MEDSYN_DATA_DIR": "/nonexistent/mirror"}, ["data", "check"],
     "MEDSYN_DATA_DIR=/nonexistent/mirror is not a folder"),
    ("data-dir-is-file", {"MEDSYN_DATA_DIR": "{place}/a_file"}, ["data", "check"],
     "a_file is not a folder"),
]


@pytest.mark.parametrize("env, argv, expected", [c[1:] for c in ENV_CASES],
                         ids=[c[0] for c in ENV_CASES])
def test_bad_environment_is_one_line(place, capsys, monkeypatch, env, argv, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(place=place))
    assert main(argv) == 2
    assert expected in one_line(capsys.readouterr().err)


def test_corrupted_mirror_file_with_a_warm_graph_cache(place, capsys, monkeypatch, data_dir):
    """The graph pickle is keyed on the files actually read: a corrupted input is an error."""
    import shutil

    from medsyn_utils.kg.graph import GRAPH_FILES, load_graph

    load_graph()  # warm the cache with the intact mirror
    mirror = place / "mirror"
    shutil.copytree(data_dir, mirror)
    victim = mirror / sorted(GRAPH_FILES)[0]
    victim.write_bytes(victim.read_bytes()[:-10] + b"corrupted!")
    monkeypatch.setenv("MEDSYN_DATA_DIR", str(mirror))
    assert main(["kg", "stats"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"checksum mismatch for {sorted(GRAPH_FILES)[0]}" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_not_writable(place, capsys):
    locked = place / "locked"
    locked.mkdir(mode=0o500)
    status = main(run_args(place)[:-3] + ["--out", str(locked / "run")])
    assert status == 2 and "is not writable" in one_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- as processes

def medsyn_process(*argv: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "medsyn_utils.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


def test_process_missing_params_file(place):
    done = medsyn_process("run", "--params", "nope.yaml", cwd=place)
    assert done.returncode == 2
    assert f"{place / 'nope.yaml'} does not exist" in one_line(done.stderr)


def test_process_relative_out_is_read_from_the_current_folder(place):
    """A relative --out names a folder under the current folder, not under the checkout."""
    (place / "a_file").replace(place / "outfile")
    done = medsyn_process("run", "--params", "ok.yaml", "--root", str(ROOT), "--out", "outfile",
                          cwd=place)
    assert done.returncode == 2
    assert f"run folder {place / 'outfile'}: {place / 'outfile'} is a file" in one_line(done.stderr)


def test_process_missing_input(place):
    done = medsyn_process("run", "--params", "ok.yaml", "--root", str(ROOT), "--out", "fresh",
                          "--only", "scoring", cwd=place)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert f"no generations.jsonl in {place / 'fresh'}: run the generation stage first" in line
