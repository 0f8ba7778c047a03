"""Stage 03 with a tiny random-weight model: batching, padding, resuming, OOM splits, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from medsyn_utils.cli import app as cli
from medsyn_utils.generate.backends.base import DEFAULT_COMPLETION_STOP
from medsyn_utils.generate.preview import preview
from medsyn_utils.tasks.table import load_task_table
from medsyn_utils.core.errors import InputTableError, ModelError, ParameterError
from medsyn_utils.generate.backends import TransformersBackend
from medsyn_utils.generate.backends.base import Decoding, Prompt, cut_at_stop, finish, strip_echo
from medsyn_utils.generate.stage import generate_store
from medsyn_utils.generate.models import resolve_model
from medsyn_utils.core.schema import FINISH_REASONS, STORE_FIELDS
from medsyn_utils.generate.store import read_records
from generation_helpers import make_tasks, responses

ROOT = Path(__file__).resolve().parents[2]




GREEDY = dict(max_new_tokens=12, temperature=0.0, progress=False)


# --------------------------------------------------------------------------- batching

@pytest.mark.parametrize("form", ["chat", "completion"])
def test_batched_and_sequential_give_the_same_notes_under_greedy(varied_lm_dir, tmp_path, form):
    tasks = make_tasks(7)
    batched = generate_store(tasks, tmp_path / "b.jsonl", model=str(varied_lm_dir),
                             batch_size=7, prompt_form=form, stop=[], **GREEDY)
    one = generate_store(tasks, tmp_path / "s.jsonl", model=str(varied_lm_dir), batch_size=1,
                         prompt_form=form, stop=[], **GREEDY)
    assert batched.generated == one.generated == 7
    got, expected = responses(tmp_path / "b.jsonl"), responses(tmp_path / "s.jsonl")
    assert got == expected
    assert len(set(expected.values())) >= 4, "the model should answer prompts differently"
    sizes = {r["decoding"]["batch_size"] for r in read_records(tmp_path / "b.jsonl")}
    assert sizes == {7}


def test_left_padding(varied_lm_dir):
    backend = TransformersBackend(resolve_model(str(varied_lm_dir)), device="cpu",
                                  prompt_form="completion")
    short = Prompt("a", text="Боль в горле.")
    long = Prompt("b", text="Жалобы на головную боль, слабость и повышение температуры тела.")
    encoded = backend._encode([long.text, short.text])
    mask, ids = encoded["attention_mask"], encoded["input_ids"]
    pad = backend.tokenizer.pad_token_id
    assert mask[1, 0] == 0 and ids[1, 0] == pad, "the shorter prompt is padded on the left"
    assert bool(mask[:, -1].all()), "every row ends with its last real token"
    assert mask[0].all()
    decoding = Decoding(max_new_tokens=10, temperature=0.0)
    alone = backend.generate_batch([short], decoding)[0]
    padded = backend.generate_batch([long, short], decoding)[1]
    assert padded.text == alone.text
    assert padded.prompt_tokens == alone.prompt_tokens == int(mask[1].sum())


def test_records_carry_model_decoding_prompt_and_counts(varied_lm_dir, tmp_path):
    tasks = make_tasks(3)
    report = generate_store(tasks, tmp_path / "s.jsonl", model=str(varied_lm_dir), batch_size=2,
                            max_new_tokens=6, temperature=0.9, top_p=0.8,
                            repetition_penalty=1.2, seed=7, progress=False)
    records = read_records(tmp_path / "s.jsonl")
    assert len(records) == 3 and report.generated == 3
    for r in records:
        assert list(r) == list(STORE_FIELDS)
        assert r["model_id"] == str(varied_lm_dir) and r["backend"] == "transformers"
        assert r["decoding"]["temperature"] == 0.9 and r["decoding"]["top_p"] == 0.8
        assert r["decoding"]["repetition_penalty"] == 1.2 and r["decoding"]["seed"] == 7
        assert r["decoding"]["do_sample"] is True and r["decoding"]["prompt_form"] == "chat"
        task = tasks.set_index("task_id").loc[r["task_id"]]
        assert task["user_prompt"] in r["prompt"] and "<|assistant|>" in r["prompt"]
        assert r["prompt_tokens"] > 0 and 0 < r["completion_tokens"] <= 6
        assert r["finish_reason"] in FINISH_REASONS
    assert report.completion_tokens == sum(r["completion_tokens"] for r in records)
    assert report.tokens_per_s > 0 and report.notes_per_min > 0


def test_sampling_is_reproducible_with_a_seed(varied_lm_dir, tmp_path):
    tasks = make_tasks(4)
    kwargs = dict(model=str(varied_lm_dir), batch_size=2, max_new_tokens=10, temperature=1.0,
                  top_p=0.95, progress=False)
    generate_store(tasks, tmp_path / "a.jsonl", seed=3, **kwargs)
    generate_store(tasks, tmp_path / "b.jsonl", seed=3, **kwargs)
    generate_store(tasks, tmp_path / "c.jsonl", seed=4, **kwargs)
    assert responses(tmp_path / "a.jsonl") == responses(tmp_path / "b.jsonl")
    assert responses(tmp_path / "a.jsonl") != responses(tmp_path / "c.jsonl")


def test_stop_string_cuts_the_note(varied_lm_dir, tmp_path):
    tasks = make_tasks(3)
    generate_store(tasks, tmp_path / "free.jsonl", model=str(varied_lm_dir), stop=[], **GREEDY)
    free = responses(tmp_path / "free.jsonl")
    task_id, text = next((k, v) for k, v in sorted(free.items()) if len(v.strip()) > 4)
    marker = text.strip()[3]
    generate_store(tasks[tasks.task_id == task_id], tmp_path / "cut.jsonl",
                   model=str(varied_lm_dir), stop=[marker], max_failed_share=1.0, **GREEDY)
    [cut] = read_records(tmp_path / "cut.jsonl")
    assert cut["response"] == text.strip()[:text.strip().index(marker)].strip()
    assert marker not in cut["response"]
    assert cut["finish_reason"] in ("stop", "empty")
    assert (cut["finish_reason"] == "empty") == bool(cut["error"])  # an empty note says why
    assert cut["decoding"]["stop"] == [marker]


def test_default_stop_for_completion_is_a_blank_line_or_the_next_patient(varied_lm_dir, tmp_path):
    generate_store(make_tasks(2), tmp_path / "s.jsonl", model=str(varied_lm_dir),
                   prompt_form="completion", max_failed_share=1.0, **GREEDY)
    assert {r["decoding"]["prompt_form"] for r in read_records(tmp_path / "s.jsonl")} == {"completion"}
    assert all(r["decoding"]["stop"] == list(DEFAULT_COMPLETION_STOP)
               and "\n\n" not in r["response"] for r in read_records(tmp_path / "s.jsonl"))
    assert "\n\n" in DEFAULT_COMPLETION_STOP and "Пациент 3." in \
        DEFAULT_COMPLETION_STOP
    # a note that runs on into the next record of the few-shot templates is cut there
    assert cut_at_stop("Жалобы на кашель.\nСимптомы: насморк.", DEFAULT_COMPLETION_STOP) == \
        ("Жалобы на кашель.", True)
    prompt = Prompt("t", text="Пациент 2.", echoes=("Пациент 2.",))
    text, reason = finish(" Кашель три дня. Пациент 3. Пациент 4. Пациент 5.", prompt,
                          DEFAULT_COMPLETION_STOP, hit_eos=False, tokens=20,
                          max_new_tokens=20)
    assert (text, reason) == ("Кашель три дня.", "stop")


def test_post_processing():
    prompt = Prompt("t", text="Пациент 2.", echoes=("Пациент 2.",))
    assert strip_echo("  Пациент 2. Кашель.", prompt.echoes).strip() == "Кашель."
    assert cut_at_stop("Кашель.\n\nПациент 3.", ["\n\n"]) == ("Кашель.", True)
    assert cut_at_stop("\n\nКашель.", ["\n\n"]) == ("\n\nКашель.", False)  # leading blank kept
    assert finish("Кашель", prompt, [], hit_eos=False, tokens=8, max_new_tokens=8) == ("Кашель", "length")
    assert finish("Кашель", prompt, [], hit_eos=True, tokens=5, max_new_tokens=8) == ("Кашель", "stop")
    assert finish("Пациент 2.  ", prompt, [], hit_eos=True, tokens=3, max_new_tokens=8) == ("", "empty")
    assert finish("Кашель\n\nещё", prompt, ["\n\n"], hit_eos=False, tokens=8,
                  max_new_tokens=8) == ("Кашель", "stop")


# --------------------------------------------------------------------------- resuming

def test_restart_generates_only_missing_tasks(varied_lm_dir, tmp_path):
    tasks = make_tasks(6)
    path = tmp_path / "s.jsonl"
    first = generate_store(tasks, path, model=str(varied_lm_dir), batch_size=2, max_tasks=3,
                           **GREEDY)
    assert first.generated == 3 and first.pending_left == 3
    second = generate_store(tasks, path, model=str(varied_lm_dir), batch_size=2, **GREEDY)
    assert second.already_done == 3 and second.generated == 3 and second.pending_left == 0
    third = generate_store(tasks, path, model="/no/such/model", **GREEDY)  # nothing to do
    assert third.generated == 0 and third.already_done == 6
    ids = [r["task_id"] for r in read_records(path)]
    assert sorted(ids) == sorted(tasks.task_id) and len(ids) == len(set(ids))


def _cli_generate(tasks_path: Path, out: Path, model: Path) -> list[str]:
    return [sys.executable, "-m", "medsyn_utils.cli", "generate", "--tasks", str(tasks_path),
            "--out", str(out), "--model", str(model), "--batch-size", "2", "--max-new-tokens",
            "16", "--min-new-tokens", "16", "--temperature", "0", "--no-progress"]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_kill_9_mid_run_then_restart_gives_every_task_exactly_once(varied_lm_dir, tmp_path):
    tasks = make_tasks(60)
    tasks_path = tmp_path / "tasks.parquet"
    tasks.to_parquet(tasks_path)
    out = tmp_path / "generations.jsonl"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    process = subprocess.Popen(_cli_generate(tasks_path, out, varied_lm_dir), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while _lines(out) < 2:
            if process.poll() is not None:
                pytest.fail(f"generation ended before it could be killed: "
                            f"{process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no batch was stored within 240 s")
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = _lines(out)
    assert 2 <= killed_at < 60, "the run must die in the middle"
    with open(out, "ab") as handle:  # and as if the kill had torn a write
        handle.write(b'{"task_id": "t05')
    done = subprocess.run(_cli_generate(tasks_path, out, varied_lm_dir) + ["--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["already_done"] == killed_at
    assert report["generated"] == 60 - killed_at
    lines = out.read_text(encoding="utf-8").splitlines()
    ids = [json.loads(line)["task_id"] for line in lines]  # every line is whole JSON
    assert sorted(ids) == sorted(tasks.task_id), "every task exactly once"


# --------------------------------------------------------------------------- out of memory

class OOMAbove:
    """Wraps a real model; ``generate`` raises the real CUDA OOM error above a batch size."""

    def __init__(self, model, limit: int) -> None:
        self.model, self.limit, self.seen = model, limit, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, **kwargs):
        size = kwargs["input_ids"].shape[0]
        self.seen.append(size)
        if size > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated at batch {size})")
        return self.model.generate(**kwargs)


def test_oom_splits_the_batch_and_remembers_the_size_that_worked(varied_lm_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    tasks = make_tasks(12)
    spec = resolve_model(str(varied_lm_dir))
    wrapper = OOMAbove(AutoModelForCausalLM.from_pretrained(varied_lm_dir).eval(), limit=2)
    backend = TransformersBackend(spec, device="cpu", model=wrapper)
    report = generate_store(tasks, tmp_path / "oom.jsonl", backend=backend, batch_size=8,
                            **GREEDY)
    assert report.generated == 12 and report.batch_size_used == 2
    assert backend.working_batch_size == 2
    assert wrapper.seen[:3] == [8, 4, 2]
    assert max(wrapper.seen[3:]) <= 2, "after the split the working size is kept"
    generate_store(tasks, tmp_path / "ref.jsonl", model=str(varied_lm_dir), batch_size=1, **GREEDY)
    assert responses(tmp_path / "oom.jsonl") == responses(tmp_path / "ref.jsonl")


def test_oom_at_batch_size_one_is_a_clear_error(varied_lm_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    wrapper = OOMAbove(AutoModelForCausalLM.from_pretrained(varied_lm_dir).eval(), limit=0)
    backend = TransformersBackend(resolve_model(str(varied_lm_dir)), device="cpu", model=wrapper)
    with pytest.raises(ModelError, match="out of GPU memory even at batch size 1") as caught:
        generate_store(make_tasks(2), tmp_path / "s.jsonl", backend=backend, batch_size=2,
                       **GREEDY)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------- bad input

def test_unknown_backend(tiny_lm_dir, tmp_path):
    with pytest.raises(ParameterError, match=r"backend=.hf.*transformers\|openai\|vllm"):
        generate_store(make_tasks(2), tmp_path / "s.jsonl", model=str(tiny_lm_dir), backend="hf")


def test_missing_model_path_is_one_line(tmp_path):
    with pytest.raises(ModelError, match="no such folder") as caught:
        generate_store(make_tasks(2), tmp_path / "s.jsonl", model=str(tmp_path / "nope"),
                       progress=False)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_asked_but_absent(tiny_lm_dir, tmp_path):
    with pytest.raises(ParameterError, match="device='cuda'.*no CUDA GPU"):
        generate_store(make_tasks(2), tmp_path / "s.jsonl", model=str(tiny_lm_dir),
                       device="cuda")
    assert not (tmp_path / "s.jsonl").exists() or _lines(tmp_path / "s.jsonl") == 0


def test_empty_table(tiny_lm_dir, tmp_path):
    with pytest.raises(InputTableError, match="task table is empty"):
        generate_store(make_tasks(2).iloc[:0], tmp_path / "s.jsonl", model=str(tiny_lm_dir))


def test_table_without_needed_columns_names_them(tiny_lm_dir, tmp_path):
    tasks = make_tasks(2).drop(columns=["user_prompt"])
    with pytest.raises(InputTableError, match=r"\['user_prompt'\]"):
        generate_store(tasks, tmp_path / "s.jsonl", model=str(tiny_lm_dir), prompt_form="chat")
    with pytest.raises(InputTableError, match=r"\['user_prompt'\]"):  # auto picks chat here
        generate_store(tasks, tmp_path / "s2.jsonl", model=str(tiny_lm_dir), progress=False)
    with pytest.raises(InputTableError, match=r"task_id"):
        generate_store(make_tasks(2).drop(columns=["task_id"]), tmp_path / "s3.jsonl",
                       model=str(tiny_lm_dir))


def test_malformed_tables(tiny_lm_dir, tmp_path):
    duplicated = pd.concat([make_tasks(2), make_tasks(1)])
    with pytest.raises(InputTableError, match="repeats task ids"):
        generate_store(duplicated, tmp_path / "s.jsonl", model=str(tiny_lm_dir))
    blank = make_tasks(2)
    blank.loc[1, "completion_prompt"] = None
    with pytest.raises(InputTableError, match="'completion_prompt' is empty for tasks"):
        generate_store(blank, tmp_path / "s.jsonl", model=str(tiny_lm_dir),
                       prompt_form="completion")
    with pytest.raises(InputTableError, match="DataFrame"):
        generate_store([{"task_id": "t1"}], tmp_path / "s.jsonl", model=str(tiny_lm_dir))


@pytest.mark.parametrize("kwargs, name", [
    ({"temperature": -1.0}, "temperature"), ({"top_p": 0.0}, "top_p"),
    ({"max_new_tokens": 0}, "max_new_tokens"), ({"batch_size": 0}, "batch_size"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"), ({"prompt_form": "poem"}, "prompt_form"),
    ({"dtype": "int3"}, "dtype"), ({"device": "tpu"}, "device"),
])
def test_bad_parameters(tiny_lm_dir, tmp_path, kwargs, name):
    with pytest.raises(ParameterError, match=name):
        generate_store(make_tasks(2), tmp_path / "s.jsonl", model=str(tiny_lm_dir),
                       **{"progress": False, **kwargs})


def test_vllm_absent_is_a_clear_error_not_an_import_crash(tiny_lm_dir, tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("vLLM and a GPU are present")
    with pytest.raises(ModelError, match="backend 'vllm' needs"):
        generate_store(make_tasks(2), tmp_path / "s.jsonl", model=str(tiny_lm_dir),
                       backend="vllm", progress=False)


def test_chat_form_asked_for_a_model_without_template_needs_columns_only(tmp_path):
    from medsyn_utils.testing.tiny import tiny_causal_lm

    base = tiny_causal_lm(tmp_path / "base", chat=False)
    report = generate_store(make_tasks(2), tmp_path / "s.jsonl", model=str(base), **GREEDY)
    assert report.prompt_form == "completion"  # no chat template: plain completion


# --------------------------------------------------------------------------- tables and CLI

def test_load_task_table_formats_and_errors(tmp_path):
    tasks = make_tasks(3)
    tasks.to_parquet(tmp_path / "t.parquet")
    tasks.to_csv(tmp_path / "t.csv", index=False)
    tasks.to_json(tmp_path / "t.jsonl", orient="records", lines=True, force_ascii=False)
    for name in ("t.parquet", "t.csv", "t.jsonl"):
        loaded = load_task_table(tmp_path / name)
        assert loaded["user_prompt"].tolist() == tasks["user_prompt"].tolist()
    with pytest.raises(InputTableError, match="does not exist"):
        load_task_table(tmp_path / "missing.parquet")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(InputTableError, match="unknown format"):
        load_task_table(tmp_path / "t.xlsx")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InputTableError, match="cannot be read"):
        load_task_table(tmp_path / "bad.parquet")


def test_cli_generate_and_one_line_errors(varied_lm_dir, tmp_path, capsys):
    tasks_path = tmp_path / "tasks.csv"
    make_tasks(3).to_csv(tasks_path, index=False)
    out = tmp_path / "g.jsonl"
    code = cli.main(["generate", "--tasks", str(tasks_path), "--out", str(out), "--model",
                     str(varied_lm_dir), "--max-new-tokens", "5", "--no-progress", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["generated"] == 3 and _lines(out) == 3
    code = cli.main(["generate", "--tasks", str(tasks_path), "--out", str(out), "--model",
                     str(varied_lm_dir), "--backend", "nope", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("medsyn: error: generation.backend='nope'") and "\n" not in err


def test_preview_shows_notes_beside_prompts(varied_lm_dir, tmp_path):
    tasks = make_tasks(3)
    generate_store(tasks, tmp_path / "s.jsonl", model=str(varied_lm_dir), **GREEDY)
    shown = preview(tmp_path / "s.jsonl", tasks, n=2)
    assert list(shown.columns) == ["task_id", "prompt", "response", "finish_reason",
                                   "completion_tokens"]
    assert len(shown) == 2
    row = shown.iloc[0]
    assert row["prompt"] == tasks.set_index("task_id").loc[row["task_id"], "user_prompt"]


# --------------------------------------------------------------------------- benchmark

def test_generation_benchmark_prints_its_figures(tiny_lm_dir, capsys):
    code = cli.main(["bench", "generation", "--json", "--model", str(tiny_lm_dir), "--tasks",
                     "4", "--batch-size", "2", "--max-new-tokens", "4", "--device", "cpu",
                     "--compare-bf16", "off"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"batched_tokens_per_s", "sequential_tokens_per_s", "ratio", "batch_size"} <= set(result)
    assert result["batch_size"] == 2 and result["tasks"] == 4 and result["max_new_tokens"] == 4
    assert result["ratio"] == pytest.approx(
        result["batched_tokens_per_s"] / result["sequential_tokens_per_s"], rel=0.01)


def test_generation_benchmark_scores_the_fp32_and_bf16_notes_alike(tiny_lm_dir, tiny_encoder_dir,
                                                                     capsys):
    """--compare-bf16 on: both sets of notes judged by the scorer (fp32), beside the speed-up."""
    code = cli.main(["bench", "generation", "--json", "--model", str(tiny_lm_dir), "--tasks", "3",
                     "--batch-size", "3", "--max-new-tokens", "6", "--device", "cpu",
                     "--skip-sequential", "--compare-bf16", "on",
                     "--judge-encoder", str(tiny_encoder_dir)])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["judge_layer"] == 4  # the tiny encoder's last layer (< scoring's 9)
    for name in ("fp32", "bf16"):
        assert 0 < result[f"{name}_notes_anamnesis_precision"] <= 1
        assert result[f"{name}_notes_mean_words"] > 0
    assert 0 <= result["bf16_identical_notes"] <= 1 and result["bf16_speedup"] > 0


def test_generation_benchmark_refuses_a_missing_judge_before_generating(tiny_lm_dir, tmp_path, capsys):
    code = cli.main(["bench", "generation", "--json", "--model", str(tiny_lm_dir), "--tasks", "2",
                     "--compare-bf16", "on", "--judge-encoder", str(tmp_path / "no-such-encoder")])
    captured = capsys.readouterr()
    assert code != 0 and captured.out == ""
    assert "no-such-encoder" in captured.err and len(captured.err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_sweep_without_a_gpu_is_a_clear_error(capsys):
    code = cli.main(["bench", "generation", "--json", "--gpu-sweep"])
    assert code == 2 and "needs a CUDA GPU" in capsys.readouterr().err


def test_device_map_loads_through_accelerate(varied_lm_dir, tmp_path):
    report = generate_store(make_tasks(2), tmp_path / "s.jsonl", model=str(varied_lm_dir),
                            device_map="cpu", stop=[], **GREEDY)
    generate_store(make_tasks(2), tmp_path / "ref.jsonl", model=str(varied_lm_dir), stop=[],
                   **GREEDY)
    assert report.generated == 2
    assert responses(tmp_path / "s.jsonl") == responses(tmp_path / "ref.jsonl")


def test_resuming_with_other_settings_is_refused(tiny_lm_dir, tmp_path):
    path = tmp_path / "generations.jsonl"
    common = dict(model=str(tiny_lm_dir), temperature=0.0, device="cpu", prompt_form="chat",
                  progress=False)
    generate_store(make_tasks(2), path, batch_size=2, max_new_tokens=4, max_tasks=1, **common)
    before = path.read_bytes()
    with pytest.raises(ParameterError, match=r"max_new_tokens 4 → 5.*--force"):
        generate_store(make_tasks(2), path, batch_size=2, max_new_tokens=5, **common)
    assert path.read_bytes() == before  # nothing lost, nothing mixed in
    report = generate_store(make_tasks(2), path, batch_size=1, max_new_tokens=4, **common)
    assert report.already_done == 1 and len(read_records(path)) == 2


def test_a_non_utf8_store_line_is_named_in_the_report_and_its_task_done_again(varied_lm_dir,
                                                                                tmp_path):
    tasks = make_tasks(3)
    path = tmp_path / "s.jsonl"
    generate_store(tasks, path, model=str(varied_lm_dir), batch_size=2, **GREEDY)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"\xff\xfe\n" + b"".join(lines[2:]))  # line 2 broken, whole
    report = generate_store(tasks, path, model=str(varied_lm_dir), batch_size=2, **GREEDY)
    assert report.rejected_lines == [2] and report.generated == 1 and report.already_done == 2
