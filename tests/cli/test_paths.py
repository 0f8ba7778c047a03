"""Relative paths on the command line are read from the current folder, not from the checkout."""

from __future__ import annotations

import argparse
from pathlib import Path

from medsyn_utils.cli.app import absolute_paths
from medsyn_utils.pipeline.planning import plan_run

ROOT = Path(__file__).resolve().parents[2]


def test_path_arguments_become_absolute_against_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-model").mkdir()
    args = absolute_paths(argparse.Namespace(
        out="runs/a", tasks="t.parquet", input="../g.jsonl", params="/abs/p.yaml",
        model="my-model", encoder="embedded:multilingual-e5-small", adapter="org/hub-id",
        seed=3))
    assert args.out == str(tmp_path / "runs/a")
    assert args.tasks == str(tmp_path / "t.parquet")
    assert args.input == str(tmp_path / "../g.jsonl")
    assert args.params == "/abs/p.yaml"
    assert args.model == str(tmp_path / "my-model")  # an existing folder here
    assert args.encoder == "embedded:multilingual-e5-small"  # not a path: unchanged
    assert args.adapter == "org/hub-id"
    assert args.seed == 3


def test_run_reads_params_and_out_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text("stages: [graph]\n")
    plan = plan_run("p.yaml", out="my-run", root=ROOT)
    assert plan.params_file == tmp_path / "p.yaml"
    assert plan.run_dir == tmp_path / "my-run"
    assert plan.parameters["graph"]["run_dir"] == str(tmp_path / "my-run")  # absolute for the notebook
    # the run_dir written in a parameter file stays relative to the project
    (tmp_path / "q.yaml").write_text("stages: [graph]\nrun_dir: outputs/q\n")
    assert plan_run("q.yaml", root=ROOT).run_dir == ROOT / "outputs" / "q"
