"""`medsyn run --params params/smoke.yaml` end to end: every stage's artefacts and the manifest.

Runs the real notebooks (the ones written so far) headless, in a temporary run folder, with
tiny random-weight models passed through ``--set`` where a notebook takes a model parameter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medsyn_utils.pipeline.parameters import declared_parameters

from medsyn_utils.pipeline.stages import STAGES, STAGE_BY_NAME
pytestmark = [pytest.mark.integration, pytest.mark.notebooks]

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
PRESENT = [stage for stage in STAGES
           if stage.default and (ROOT / stage.notebook).is_file()]

# What each stage must leave in the run folder (the kit's stage contract), besides its record.
EXPECTED: dict[str, tuple[str, ...]] = {
    "graph": (),
    "tasks": ("tasks.parquet", "tasks.csv"),
    "generation": ("generations.jsonl",),
    "scoring": ("scored.parquet", "scored.csv"),
    "evaluation": ("evaluation.parquet", "evaluation.json", "evaluation.md"),
    "analysis": ("figures/index.md",),
    "downstream": ("downstream_metrics.json",),
}
TABLES = {"tasks.parquet", "tasks.csv", "generations.jsonl", "scored.parquet", "scored.csv"}

# Tiny models for the smoke run: (stage, parameter) → fixture name or value. Used only where
# the notebook declares that parameter, so the test follows the notebooks as they are written.
TINY_MODELS: dict[tuple[str, str], str] = {
    ("generation", "model"): "tiny_lm_dir",
    ("scoring", "encoder"): "tiny_encoder_dir",
    ("scoring", "layer"): "2",  # the tiny encoder has 4 layers
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, request):
    """Run the smoke parameter file once; later tests read the run folder it leaves."""
    if not PRESENT:
        pytest.skip("no stage notebook in notebooks/ yet")
    out = tmp_path_factory.mktemp("smoke") / "run"
    overrides = []
    for (stage, name), value in TINY_MODELS.items():
        notebook = ROOT / STAGE_BY_NAME[stage].notebook
        if notebook.is_file() and name in declared_parameters(notebook):
            if value.endswith("_dir"):
                value = str(request.getfixturevalue(value))
            overrides += ["--set", f"{stage}.{name}={value}"]
    command = [sys.executable, "-m", "medsyn_utils.cli", "run", "--params", str(SMOKE),
               "--out", str(out), "--no-progress", *overrides]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1500)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return done, out, manifest, command


def test_smoke_run_finishes_and_says_where(smoke_run):
    done, out, manifest, _ = smoke_run
    assert done.returncode == 0, f"medsyn run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stdout.strip().splitlines()[-1] == f"run folder: {out}"


@pytest.mark.parametrize("name", [s.name for s in STAGES if s.default])
def test_stage_artefacts(smoke_run, name):
    stage = STAGE_BY_NAME[name]
    done, out, manifest, _ = smoke_run
    entry = manifest.get("stages", {}).get(name, {})
    assert entry.get("status") == "ok", f"{name}: {entry.get('error') or done.stderr[-2000:]}"
    assert (out / "notebooks" / Path(stage.notebook).name).is_file()
    record = json.loads((out / f"{stage.record}.json").read_text())
    assert record["stage"] == stage.record and record["parameters"], name
    for artefact in EXPECTED[name]:
        assert (out / artefact).is_file(), f"{name} did not write {artefact}"
    listed = manifest["artefacts"].get(name, {})
    for key, item in listed.items():
        assert item.get("exists"), f"{name}: artefact {key} ({item.get('path')}) is missing"
        if Path(str(item.get("path"))).name in TABLES:
            assert item.get("rows"), f"{name}: artefact {key} has no rows"
    if name == "analysis":
        assert list((out / "figures").glob("*.png")), "analysis wrote no PNG figure"


def test_smoke_manifest(smoke_run):
    done, out, manifest, _ = smoke_run
    assert manifest["status"] == "ok" and manifest["exit_status"] == 0
    assert re.fullmatch(r"[0-9a-f]{40}", manifest["git"]["commit"] or "")
    assert isinstance(manifest["git"]["dirty"], bool)
    assert manifest["packages"]["papermill"] and manifest["packages"]["torch"]
    assert manifest["params_file"] == str(SMOKE)
    for stage in PRESENT:
        assert manifest["parameters"][stage.name]["run_dir"] == str(out)
        entry = manifest["stages"][stage.name]
        assert entry["started_at"] <= entry["ended_at"] and entry["duration_s"] >= 0
    for name, item in manifest["data"].items():  # every source a stage used, with its checksum
        assert re.fullmatch(r"[0-9a-f]{64}", item["sha256"]), name
    used = {n for s in PRESENT for n in json.loads(
        (out / f"{s.record}.json").read_text()).get("data", {})}
    assert used <= set(manifest["data"])
    for stage, models in manifest["models"].items():
        assert isinstance(models, dict), stage


def test_second_smoke_run_skips_every_stage(smoke_run):
    done, out, manifest, command = smoke_run
    if done.returncode != 0:
        pytest.skip("the first smoke run failed (reported above)")
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("unchanged, skipped") == len(PRESENT), again.stdout
    second = json.loads((out / "manifest.json").read_text())
    assert {second["stages"][s.name]["status_now"] for s in PRESENT} == {"skipped"}
