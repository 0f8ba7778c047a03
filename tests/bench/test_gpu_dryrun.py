"""``medsyn bench gpu``: the dry run (every part on CPU, tiny shapes) and the budget machinery.

The GPU figures themselves come from one call on a lent GPU machine (benchmarks/gpu.sh); these
tests keep that call from rotting between leases.
"""

from __future__ import annotations

import json
import time

import pytest

from medsyn_utils.bench import gpu
from medsyn_utils.cli.app import main

ENVIRONMENT_KEYS = {"device", "gpu", "gpu_memory_gb", "driver", "cuda", "cpu_count", "versions"}
PART_KEYS = {"status", "reason", "limit_s", "seconds", "peak_gpu_memory_gb", "figures"}
SWEEP_ROW_KEYS = {"batch_size", "tokens_per_s", "decode_tokens_per_s", "bound_tokens_per_s",
                  "fraction_of_bound", "seconds"}


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["bench", "gpu", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dry_run_measures_every_part_and_writes_every_key(tmp_path, capsys):
    code, out, err = run_cli(capsys, "--dry-run", "--json", "--out", str(tmp_path))
    assert code == 0, err
    result = json.loads(out)  # stdout holds the JSON alone (library prints go to stderr)
    assert result == json.loads((tmp_path / "gpu.json").read_text(encoding="utf-8"))
    assert result["dry_run"] is True and result["seconds"] is not None
    assert set(result["environment"]) == ENVIRONMENT_KEYS
    assert result["environment"]["versions"]["torch"] and result["environment"]["versions"]["transformers"]
    assert list(result["parts"]) == list(gpu.PARTS)
    for name, part in result["parts"].items():
        assert set(part) == PART_KEYS, name
        assert part["status"] == "done", (name, part["reason"])
        assert set(part["figures"]) == set(gpu.FIGURES[name]), name
        missing = [key for key, value in part["figures"].items() if value is None]
        assert not missing, (name, missing)
    rows = result["parts"]["decode_sweep"]["figures"]["rows"]
    assert [row["batch_size"] for row in rows] == [1, 2]
    assert all(SWEEP_ROW_KEYS <= set(row) for row in rows)

    generation = result["parts"]["generation"]["figures"]
    assert generation["notes"] == generation["tasks"]
    assert generation["injected_ooms"] >= 1  # the too-large first batch was split ...
    assert generation["batch_size_used"] == generation["batch_size_asked"] // 2  # ... in half
    assert generation["completion_tokens"] == generation["notes"] * generation["max_new_tokens"]

    scoring = result["parts"]["scoring"]["figures"]
    assert scoring["fp32_max_abs_difference"] < 1e-4  # one pass = two bert_score calls
    assert scoring["fp16_max_abs_difference"] < 1e-2
    assert result["parts"]["lora"]["figures"]["trainable_parameters"] > 0

    table = (tmp_path / "gpu.md").read_text(encoding="utf-8")
    assert "DRY RUN" in table
    assert table.count("| done |") == 7  # 2 sweep rows, 1 generation, 3 scoring, 1 LoRA


def test_parts_past_the_budget_are_skipped_with_a_reason(tmp_path, capsys):
    code, out, err = run_cli(capsys, "--dry-run", "--json", "--budget-s", "1", "--out",
                             str(tmp_path))
    assert code == 0, err
    result = json.loads(out)
    for name, part in result["parts"].items():
        assert part["status"] == "skipped" and "budget" in part["reason"], name
        assert set(part["figures"]) == set(gpu.FIGURES[name])
    assert "skipped" in (tmp_path / "gpu.md").read_text(encoding="utf-8")


def test_a_part_stops_at_its_limit_and_keeps_its_figures(tmp_path):
    def slow(shape, device, work, figures):
        figures["notes"] = 3
        time.sleep(30)

    result = gpu.run_part("generation", slow, {}, "cpu", tmp_path, limit=0.2)
    assert result["status"] == "timed_out"
    assert result["seconds"] < 30
    assert result["figures"]["notes"] == 3 and result["figures"]["tokens_per_s"] is None


def test_an_alarm_set_before_a_part_is_put_back(tmp_path):
    import signal

    signal.setitimer(signal.ITIMER_REAL, 100)
    try:
        gpu.run_part("lora", lambda *args: None, {}, "cpu", tmp_path, limit=10)
        assert 90 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def test_a_failing_part_is_recorded_not_raised(tmp_path):
    def broken(shape, device, work, figures):
        raise RuntimeError("CUDA error: device-side assert triggered\nmore")

    result = gpu.run_part("lora", broken, {}, "cpu", tmp_path, limit=10)
    assert result["status"] == "failed"
    assert result["reason"] == "RuntimeError: CUDA error: device-side assert triggered"


def test_without_a_gpu_the_real_run_is_refused_in_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    code, out, err = run_cli(capsys, "--json", "--out", str(tmp_path))
    assert code == 2 and out == ""
    assert "--dry-run" in err and len(err.strip().splitlines()) == 1


def test_an_unwritable_out_is_refused_before_any_part(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, out, err = run_cli(capsys, "--dry-run", "--json", "--out", str(blocker / "sub"))
    assert code == 2 and out == ""
    assert "--out" in err and "cannot be written" in err and "medsyn bench gpu:" not in err
