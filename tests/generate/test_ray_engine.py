"""The Ray engine (issue 14): a local Ray started by the test on loopback, tiny models.

Needs the extra ``cluster`` (``pip install -e '.[cluster]'``); without Ray only the error test
runs. Ray's own start-up is bounded by the test's timeout and Ray is stopped afterwards.
"""

from __future__ import annotations

import sys

import pytest

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.core.ray_cluster import actor_cpus
from medsyn_utils.generate import ray_engine
from medsyn_utils.generate.stage import generate_store
from medsyn_utils.generate.store import read_records

from generation_helpers import make_tasks, responses

GREEDY = dict(max_new_tokens=6, temperature=0.0, prompt_form="chat", progress=False,
              max_failed_share=1.0, batch_size=2)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the extra 'cluster' is not installed")
    try:
        ray_engine.start_ray("", attempts=2)  # 127.0.0.1, no dashboard, Ray's logging quiet
    except ModelError as error:  # Ray's own start-up, not the kit: say so instead of failing
        pytest.skip(f"a local Ray does not start on this machine now: {error}")
    yield ray
    ray.shutdown()


def test_actor_cpus_leave_room_for_ray_data():
    assert actor_cpus(0, 2, 2.0) == 0.5   # two actors on 2 cores: half a CPU each
    assert actor_cpus(0, 1, 2.0) == 1.0
    assert actor_cpus(0, 4, 16.0) == 1.0
    assert actor_cpus(0, 8, 2.0) == 0.25
    assert actor_cpus(3.0, 2, 2.0) == 3.0  # as asked


def test_missing_ray_is_one_line_naming_the_extra(tiny_lm_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ModuleNotFoundError
    with pytest.raises(ParameterError, match=r"\.\[cluster\]") as caught:
        generate_store(make_tasks(2), tmp_path / "g.jsonl", model=str(tiny_lm_dir),
                       engine="ray", **GREEDY)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "g.jsonl").exists() or read_records(tmp_path / "g.jsonl") == []


def test_ray_engine_refuses_an_endpoint_backend(tmp_path):
    with pytest.raises(ParameterError, match="several base_url"):
        generate_store(make_tasks(1), tmp_path / "g.jsonl", model="tiny", backend="openai",
                       base_url="http://127.0.0.1:9/v1", engine="ray", **GREEDY)


@pytest.mark.timeout(600)
def test_two_actors_write_the_same_greedy_notes_as_local(local_ray, varied_lm_dir, tmp_path):
    tasks = make_tasks(6)
    report = generate_store(tasks, tmp_path / "ray.jsonl", model=str(varied_lm_dir),
                            engine="ray", actors=2, **GREEDY)
    generate_store(tasks, tmp_path / "local.jsonl", model=str(varied_lm_dir), **GREEDY)
    assert report.engine == "ray" and report.generated + report.failed == 6
    assert responses(tmp_path / "ray.jsonl") == responses(tmp_path / "local.jsonl")
    lines = (tmp_path / "ray.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6, "every task exactly once"
    ray_records = {r["task_id"]: r for r in read_records(tmp_path / "ray.jsonl")}
    local_records = {r["task_id"]: r for r in read_records(tmp_path / "local.jsonl")}
    for task_id, record in ray_records.items():
        assert record["task_fingerprint"] == local_records[task_id]["task_fingerprint"]
        assert record["prompt"] == local_records[task_id]["prompt"]


@pytest.mark.timeout(600)
def test_ray_resume_never_sends_finished_tasks_again(local_ray, tiny_lm_dir, tmp_path):
    path = tmp_path / "g.jsonl"
    first = generate_store(make_tasks(5), path, model=str(tiny_lm_dir), engine="ray", actors=2,
                           max_tasks=3, **GREEDY)
    assert first.generated + first.failed == 3
    before = path.read_text(encoding="utf-8").splitlines()
    second = generate_store(make_tasks(5), path, model=str(tiny_lm_dir), engine="ray", actors=2,
                            **GREEDY)
    after = path.read_text(encoding="utf-8").splitlines()
    assert after[:len(before)] == before, "finished notes untouched"
    done_before = {r["task_id"] for r in read_records(path) if not r["error"]} & \
        {f"t{i:03d}" for i in range(5)}
    assert second.already_done == sum(1 for line in before if '"error": null' in line)
    assert len(done_before) + sum(1 for r in read_records(path) if r["error"]) == 5
    assert sorted(r["task_id"] for r in read_records(path)) == [f"t{i:03d}" for i in range(5)]


def test_actor_batch_gives_the_local_records_without_ray(varied_lm_dir, tmp_path):
    """The actor's batch call (what Ray runs on a worker) writes the local engine's notes."""
    import json

    from medsyn_utils.core.artefacts import task_fingerprints
    from medsyn_utils.core.provenance import json_default
    from medsyn_utils.generate.backends.base import Decoding

    tasks = make_tasks(3)
    generate_store(tasks, tmp_path / "local.jsonl", model=str(varied_lm_dir), repetition_penalty=1.0,
                   **GREEDY)  # the Decoding below has no penalty
    actor = ray_engine.GenerationActor("transformers", {"model": str(varied_lm_dir),
                                                        "prompt_form": "chat", "device": "cpu"},
                                       Decoding(max_new_tokens=6, temperature=0.0), retries=2)
    fingerprints = task_fingerprints(tasks)
    rows = [{**row, "task_fingerprint": fingerprints[row["task_id"]]}
            for row in tasks.to_dict("records")]
    out = actor({"task": [json.dumps(r, default=json_default) for r in rows]})
    records = [json.loads(text) for text in out["record"] if text]
    assert not any(out["fatal"]) and len(records) == 3
    assert {r["task_id"]: r["response"] for r in records} == responses(tmp_path / "local.jsonl")
    assert all(r["task_fingerprint"] == fingerprints[r["task_id"]] for r in records)


def test_actor_reports_a_model_it_cannot_load_as_fatal(tmp_path):
    from medsyn_utils.generate.backends.base import Decoding

    actor = ray_engine.GenerationActor("transformers", {"model": str(tmp_path / "missing")},
                                       Decoding(max_new_tokens=2), retries=0)
    out = actor({"task": ['{"task_id": "t1", "task_fingerprint": "f", "user_prompt": "x"}']})
    assert out["record"] == [""] and "missing" in out["fatal"][0]


def test_scaling_benchmark_is_registered_and_checks_its_arguments_first(capsys):
    from medsyn_utils.bench import BENCHMARKS
    from medsyn_utils.cli import app as cli

    assert "scaling" in BENCHMARKS
    assert cli.main(["bench", "scaling", "--tasks", "1", "--json"]) != 0
    captured = capsys.readouterr()
    assert captured.out == "" and "bench scaling --tasks=1 is out of range" in captured.err
    assert "Traceback" not in captured.err


class _DiesOnce(ray_engine.GenerationActor):
    """A replica whose process dies on its first batch (the first one only, across restarts)."""

    marker = ""

    def __call__(self, batch):
        import os

        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)  # the worker process dies mid-run
        return super().__call__(batch)


@pytest.mark.timeout(600)
def test_a_replica_killed_mid_run_is_replaced_and_its_batch_retried(local_ray, tiny_lm_dir,
                                                                      tmp_path, monkeypatch):
    from ray import cloudpickle

    _DiesOnce.marker = str(tmp_path / "died")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    monkeypatch.setattr(ray_engine, "GenerationActor", _DiesOnce)
    try:
        report = generate_store(make_tasks(4), tmp_path / "g.jsonl", model=str(tiny_lm_dir),
                                engine="ray", actors=2, **GREEDY)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert (tmp_path / "died").exists(), "a replica did die"
    lines = (tmp_path / "g.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and report.generated + report.failed == 4
    assert sorted(r["task_id"] for r in read_records(tmp_path / "g.jsonl")) == \
        [f"t{i:03d}" for i in range(4)]
