"""bf16 on CPU (detected, or one clear line), its own hash, and the shared pooled-embedding cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from score_helpers import EXAMPLES, LAYER, NOTES, SYMPTOMS

from medsyn_utils.core import hardware
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.score import embedding_cache, embeddings, scorer as scorer_module
from medsyn_utils.score.scorer import NoteScorer

# bf16 keeps 8 bits of mantissa: a tiny random encoder's scores move by well under this.
BF16_TOLERANCE = 0.03


@pytest.fixture()
def bf16_cpu(monkeypatch):
    """Pretend the CPU has native bf16 (torch runs bf16 on any CPU, only slower without it)."""
    monkeypatch.setattr(scorer_module, "cpu_bf16_supported", lambda: True)


@pytest.fixture()
def no_bf16_cpu(monkeypatch):
    monkeypatch.setattr(scorer_module, "cpu_bf16_supported", lambda: False)


def test_bf16_and_fp32_tables_never_share_a_hash(tiny_encoder_dir, bf16_cpu) -> None:
    fp32 = NoteScorer(str(tiny_encoder_dir), LAYER, device="cpu")
    bf16 = NoteScorer(str(tiny_encoder_dir), LAYER, device="cpu", precision="bf16")
    a = fp32.score(NOTES, SYMPTOMS, EXAMPLES, progress=False)
    b = bf16.score(NOTES, SYMPTOMS, EXAMPLES, progress=False)
    assert bf16.hash != fp32.hash and bf16.hash.endswith("_bf16-mixed")
    assert fp32.last_report.hash != bf16.last_report.hash
    dtypes = {type(m).__name__: str(m.weight.dtype) for m in bf16.model.modules()
              if getattr(m, "weight", None) is not None}
    # mixed precision: the linear layers' weights in bf16, norms and embeddings (the residual
    # stream) in fp32
    assert dtypes["Linear"] == "torch.bfloat16"
    assert dtypes["LayerNorm"] == dtypes["Embedding"] == "torch.float32"
    states = bf16.embed(["кашель и температура"])
    assert str(next(iter(states.values())).dtype) == "torch.float32"
    for name in ("symptoms_recall", "anamnesis_precision"):
        x, y = a[name].to_numpy(), b[name].to_numpy()
        assert np.isfinite(y[np.isfinite(x)]).all()
        assert 0 < np.nanmax(np.abs(x - y)) < BF16_TOLERANCE  # not the same numbers, but close


def test_auto_precision_follows_the_cpu(tiny_encoder_dir, monkeypatch) -> None:
    monkeypatch.setattr(scorer_module, "cpu_bf16_supported", lambda: True)
    with_bf16 = NoteScorer(str(tiny_encoder_dir), LAYER, device="cpu", precision="auto")
    assert with_bf16.precision == scorer_module.AUTO_CPU_BF16
    assert with_bf16.settings["precision"] == with_bf16.precision  # a Ray actor builds the same
    monkeypatch.setattr(scorer_module, "cpu_bf16_supported", lambda: False)
    without = NoteScorer(str(tiny_encoder_dir), LAYER, device="cpu", precision="auto")
    assert without.precision == "fp32"
    assert scorer_module.resolve_precision("auto", "cuda") == "fp32"


def test_bf16_on_a_cpu_without_it_is_one_clear_line(tiny_encoder_dir, no_bf16_cpu) -> None:
    with pytest.raises(ParameterError) as error:
        NoteScorer(str(tiny_encoder_dir), LAYER, device="cpu", precision="bf16")
    message = str(error.value)
    assert "\n" not in message
    assert "AVX512-BF16" in message and "use fp32" in message
    assert hardware.cpu_description()["model"] in message


def test_bf16_cli_on_a_cpu_without_it(tmp_path, tiny_encoder_dir, capsys, monkeypatch) -> None:
    from medsyn_utils.cli.app import main

    monkeypatch.setenv("MEDSYN_CPU_BF16", "0")  # the detection's override: a CPU without bf16
    table = tmp_path / "scored_input.csv"
    pd.DataFrame({"idx": ["a", "b"], "response": NOTES[:2], "symptoms": SYMPTOMS[:2],
                  "anamnesis": EXAMPLES[:2]}).to_csv(table, index=False)
    status = main(["score", "--in", str(table), "--encoder", str(tiny_encoder_dir),
                   "--layer", str(LAYER), "--precision", "bf16", "--device", "cpu",
                   "--out", str(tmp_path / "out.parquet")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "precision='bf16'" in line]
    assert status == 2 and "Traceback" not in err
    assert len(lines) == 1 and "AVX512-BF16 or AMX" in lines[0] and "use fp32" in lines[0]


def test_detection_reads_flags_and_its_override(monkeypatch) -> None:
    monkeypatch.delenv("MEDSYN_CPU_BF16", raising=False)
    flags = hardware.cpu_description()["flags"]
    assert hardware.cpu_bf16_supported() == any(f in flags for f in hardware.BF16_FLAGS)
    monkeypatch.setenv("MEDSYN_CPU_BF16", "0")
    assert hardware.cpu_bf16_supported() is False
    monkeypatch.setenv("MEDSYN_CPU_BF16", "1")
    assert hardware.cpu_bf16_supported() is True


def test_cache_returns_the_vectors_of_a_fresh_embedding(tiny_encoder_dir, tmp_path) -> None:
    texts = [NOTES[0], "  " + NOTES[1] + " ", NOTES[0], "", NOTES[2]]
    fresh_scorer = NoteScorer(str(tiny_encoder_dir), LAYER, device="cpu")
    states = fresh_scorer.embed([NOTES[0], NOTES[1], NOTES[2]])
    fresh = np.stack([states[t].mean(dim=0).numpy() for t in (NOTES[0], NOTES[1], NOTES[0])])
    first = embeddings.embed_texts(texts, encoder=str(tiny_encoder_dir), layer=LAYER,
                                        precision="fp32", cache_dir=tmp_path, device="cpu")
    cache = embedding_cache.cache_for(fresh_scorer, tmp_path)
    assert len(cache) == 3  # each distinct text once
    again = embeddings.embed_texts(texts, encoder=str(tiny_encoder_dir), layer=LAYER,
                                        precision="fp32", cache_dir=tmp_path, device="cpu")
    assert first.dtype == np.float32 and first.shape == (5, fresh.shape[1])
    assert np.isnan(first[3]).all()  # an empty text has no vector
    np.testing.assert_allclose(first[[0, 1, 2]], fresh, atol=1e-5)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_allclose(first[4], states[NOTES[2]].mean(dim=0).numpy(), atol=1e-5)


def test_scoring_fills_the_cache_the_evaluation_reads(tiny_encoder_dir, tmp_path, bf16_cpu,
                                                      monkeypatch) -> None:
    bf16 = NoteScorer(str(tiny_encoder_dir), LAYER, device="cpu", precision="bf16",
                              embedding_cache_dir=tmp_path)
    bf16.score(NOTES, SYMPTOMS, EXAMPLES, progress=False)
    distinct = set(NOTES) | set(SYMPTOMS) | set(EXAMPLES)
    assert len(bf16.embedding_cache) == len(distinct)
    fp32_cache = embedding_cache.cache_for(
        NoteScorer(str(tiny_encoder_dir), LAYER, device="cpu"), tmp_path)
    assert fp32_cache.path != bf16.embedding_cache.path and len(fp32_cache) == 0
    # the evaluation's call finds every note already there: nothing is embedded again
    embeddings._SCORERS.clear()
    monkeypatch.setattr(NoteScorer, "embed", lambda self, texts: pytest.fail("embedded again"))
    vectors = embeddings.embed_texts(NOTES, encoder=str(tiny_encoder_dir), layer=LAYER,
                                          precision="bf16", cache_dir=tmp_path, device="cpu")
    assert vectors.shape[0] == len(NOTES) and np.isfinite(vectors).all()
