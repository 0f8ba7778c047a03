"""The stage contract: for every stage, notebook defaults = command defaults = config (library)
defaults = ``medsyn params`` output, every field reachable, and bad values refused up front."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsyn_utils.cli.app import build_parser, main
from medsyn_utils.cli.options import option_fields
from medsyn_utils.core.config import StageConfig
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.pipeline.contract import CONFIGS
from medsyn_utils.pipeline.parameters import declared_parameters
from medsyn_utils.pipeline.stages import STAGE_BY_NAME

ROOT = Path(__file__).resolve().parents[2]
# stage → (command argv with its required options, how the command names run_dir)
COMMANDS = {
    "tasks": ["tasks", "--out", "x"],
    "generation": ["generate", "--tasks", "t.parquet", "--out", "g.jsonl"],
    "scoring": ["score", "--in", "g.jsonl", "--out", "s.csv"],
    "evaluation": ["evaluate", "--in", "s.csv", "--out", "e"],
    "downstream": ["downstream", "--synthetic", "s.csv", "--out", "d"],
}


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            math.isclose(a, b, rel_tol=0, abs_tol=1e-12)
    return a == b


@pytest.mark.parametrize("stage", list(CONFIGS))
def test_notebook_cell_equals_the_config(stage):
    config = CONFIGS[stage]
    declared = declared_parameters(ROOT / STAGE_BY_NAME[stage].notebook)
    assert list(declared) == list(config.model_fields), \
        f"{stage}: notebook names differ from {config.__name__}"
    defaults = config.defaults()
    drift = {name: (p.default, defaults[name]) for name, p in declared.items()
             if not _same(p.default, defaults[name])}
    assert not drift, f"{stage}: notebook default != config default: {drift}"


@pytest.mark.parametrize("stage", list(COMMANDS))
def test_command_defaults_equal_the_config(stage):
    config = CONFIGS[stage]
    args = build_parser().parse_args(COMMANDS[stage])
    defaults = config.defaults()
    for name in option_fields(config):
        if stage == "tasks":  # merged over --params: an option left out is absent, the config's applies
            assert not hasattr(args, name), name
            continue
        assert _same(getattr(args, name), defaults[name]), (stage, name)
    # every field is an option of the command, or named otherwise, or notebook-only with a reason
    for name in config.model_fields:
        assert name in option_fields(config) or config.CLI_ALIASES.get(name) or \
            config.NOTEBOOK_ONLY.get(name), (stage, name)


@pytest.mark.parametrize("stage", list(CONFIGS))
def test_medsyn_params_prints_the_config(stage, capsys):
    assert main(["params", stage, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    config = CONFIGS[stage]
    assert list(shown) == list(config.model_fields)
    for name, row in shown.items():
        assert _same(row["default"], config.defaults()[name]), (stage, name)
    assert main(["params", stage]) == 0
    assert config.__name__ in capsys.readouterr().out


def test_unified_defaults():
    """The defaults that had drifted apart (README changelog): one value each."""
    generation, scoring = CONFIGS["generation"](), CONFIGS["scoring"]()
    assert generation.max_new_tokens == 256
    assert generation.repetition_penalty == 1.1
    assert scoring.calibrate is True


@pytest.mark.parametrize("values, where", [
    ({"temperature": float("nan")}, "generation.temperature=nan"),
    ({"temperature": float("inf")}, "generation.temperature=inf"),
    ({"timeout": -1}, "generation.timeout=-1"),
    ({"seed": 2**70}, "generation.seed="),
    ({"backend": "hf"}, "one of transformers|openai|vllm"),
    ({"concurrency": 0}, "generation.concurrency=0"),
    ({"bogus": 1}, "unknown parameter generation.bogus"),
])
def test_config_refuses_in_one_line(values, where):
    with pytest.raises(ParameterError) as error:
        CONFIGS["generation"].check(values)
    assert where in str(error.value) and "\n" not in str(error.value)


def test_every_config_field_has_help_and_a_valid_default():
    for stage, config in CONFIGS.items():
        assert issubclass(config, StageConfig) and config.STAGE == stage
        config()  # the defaults pass their own checks
        for name, info in config.model_fields.items():
            assert info.description, (stage, name)


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "medsyn_utils.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


BAD = [  # (id, argv, what the one line names)
    ("tasks-huge-seed", ["tasks", "--out", "{t}/t", "--seed", "123456789012345678901234567890"],
     "tasks.seed=123456789012345678901234567890"),
    ("generate-nan", ["generate", "--tasks", "{t}/none.parquet", "--out", "{t}/g.jsonl",
                      "--temperature", "nan"], "generation.temperature=nan"),
    ("generate-inf", ["generate", "--tasks", "{t}/none.parquet", "--out", "{t}/g.jsonl",
                      "--temperature", "inf"], "generation.temperature=inf"),
    ("generate-inf-endpoint", ["generate", "--tasks", "{t}/none.parquet", "--out", "{t}/g.jsonl",
                               "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                               "--temperature", "inf"], "generation.temperature=inf"),
    ("generate-nan-endpoint", ["generate", "--tasks", "{t}/none.parquet", "--out", "{t}/g.jsonl",
                               "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                               "--temperature", "nan"], "generation.temperature=nan"),
    ("generate-timeout", ["generate", "--tasks", "{t}/none.parquet", "--out", "{t}/g.jsonl",
                          "--backend", "openai", "--timeout", "-1"], "generation.timeout=-1"),
    ("score-seed", ["score", "--in", "{t}/g.jsonl", "--out", "{t}/s.csv", "--calibrate",
                    "--seed", "-1"], "scoring.seed=-1"),
    ("score-thresholds", ["score", "--in", "{t}/g.jsonl", "--out", "{t}/s.csv",
                          "--recall-threshold", "-2", "--precision-threshold", "-2"],
     "scoring.recall_threshold=-2"),
    ("run-only-comma", ["run", "--params", "{root}/params/smoke.yaml", "--out", "{t}/run",
                        "--only", ","], "--only: no stage selected"),
    ("params-empty", ["params", ""], "medsyn params needs a stage name"),
    ("downstream-controls", ["downstream", "--synthetic", "{t}/s.csv", "--out", "{t}/d",
                             "--controls", "bogus"], "downstream.controls[0]='bogus'"),
    ("run-precision", ["run", "--params", "{root}/params/smoke.yaml", "--out", "{t}/run",
                       "--set", "scoring.precision=int4"], "scoring.precision='int4'"),
    ("run-controls", ["run", "--params", "{root}/params/smoke.yaml", "--out", "{t}/run",
                      "--set", "downstream.controls=[bogus]"], "downstream.controls[0]='bogus'"),
    ("run-nan", ["run", "--params", "{root}/params/smoke.yaml", "--out", "{t}/run",
                 "--set", "generation.temperature=nan"], "generation.temperature=nan"),
]


@pytest.mark.parametrize("argv, names", [case[1:] for case in BAD], ids=[c[0] for c in BAD])
def test_bad_stage_parameters_are_refused_before_anything_runs(tmp_path, argv, names):
    argv = [a.format(t=tmp_path, root=ROOT) for a in argv]
    result = _cli(*argv, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert names in lines[0]
    assert any(word in lines[0] for word in ("accepted", "one of", "stage")), lines[0]
    assert not (tmp_path / "g.jsonl").exists()  # no 0-byte store left behind
    assert not (tmp_path / "run").exists() and not (tmp_path / "d").exists()  # nothing ran


def test_every_generation_field_is_reachable_from_medsyn_run(tmp_path):
    """Parameters the README documents (concurrency, adapter, tensor_parallel_size ...) are set
    through `medsyn run --set` and reach the notebook checked and converted by the config."""
    from medsyn_utils.pipeline.planning import plan_run

    plan = plan_run(ROOT / "params" / "smoke.yaml", root=ROOT, out=tmp_path / "run",
                    overrides=["generation.concurrency=8", "generation.tensor_parallel_size=2",
                               "generation.adapter=some/folder", "generation.timeout=30",
                               "generation.stop=['###']", "scoring.device=cpu"])
    generation = plan.parameters["generation"]
    assert generation["concurrency"] == 8 and generation["tensor_parallel_size"] == 2
    assert generation["adapter"] == "some/folder" and generation["timeout"] == 30.0
    assert generation["stop"] == ["###"] and plan.parameters["scoring"]["device"] == "cpu"
