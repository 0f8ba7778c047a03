"""Resumable chunked scoring (a run stopped mid-way and re-run gives the table of one run) and the
reduced-precision encoder paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from score_helpers import EXAMPLES, LAYER, NOTES, SYMPTOMS

from medsyn_utils.core import artefacts
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.score.chunks import chunk_folder
from medsyn_utils.score.layout import check_table
from medsyn_utils.score.scorer import NoteScorer
from medsyn_utils.score.stage import score_table
from medsyn_utils.score.chunks import chunk_keys
from medsyn_utils.testing.tiny import SENTENCES

ROWS = 11  # with chunk_rows=3: chunks of 3, 3, 3, 2


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(SENTENCES), size=(ROWS, 3))
    return check_table(pd.DataFrame({
        "idx": [f"n{i}" for i in range(ROWS)],
        "response": [SENTENCES[a] for a, _, _ in pick],
        "symptoms": [SYMPTOMS[c % len(SYMPTOMS)] for _, _, c in pick],
        "anamnesis": [EXAMPLES[0] if i % 2 else SENTENCES[c] for i, (_, _, c) in enumerate(pick)]}))


@pytest.fixture()
def scorer(tiny_encoder_dir):
    return NoteScorer(str(tiny_encoder_dir), LAYER, batch_size=2)


def _score(scorer, out):
    return score_table(_table(), scorer, recall_threshold=0.3, precision_threshold=0.3,
                               chunk_rows=3, out=out, progress=False)


@pytest.mark.parametrize("stop", [RuntimeError("device lost"), KeyboardInterrupt()])
def test_stopped_run_resumes_to_the_table_of_one_run(scorer, tmp_path, monkeypatch, stop) -> None:
    whole = _score(scorer, tmp_path / "one" / "scored.parquet")
    calls = {"n": 0}
    real = scorer._greedy

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:  # each chunk makes two calls (recall, precision): chunk 3 fails
            raise stop
        return real(*args, **kwargs)

    out = tmp_path / "two" / "scored.parquet"
    monkeypatch.setattr(scorer, "_greedy", failing)
    with pytest.raises(type(stop)):
        _score(scorer, out)
    chunks = chunk_folder(out)
    assert len(list(chunks.glob("*.parquet"))) == 2 and not out.exists()
    monkeypatch.setattr(scorer, "_greedy", real)
    resumed = _score(scorer, out)
    assert scorer.last_report.rows == 5  # only the two unfinished chunks were scored
    pd.testing.assert_frame_equal(resumed, whole, check_exact=True)
    pd.testing.assert_frame_equal(artefacts.read_scored_table(out),
                                  artefacts.read_scored_table(tmp_path / "one" / "scored.parquet"),
                                  check_exact=True)
    assert not chunks.exists()


def test_chunks_are_keyed_by_notes_and_encoder(scorer, tiny_encoder_dir, tmp_path) -> None:
    table = _table()
    args = (table["response"], table["symptoms"], table["anamnesis"])
    base = chunk_keys(scorer, *args, chunk_rows=3)
    assert len(base) == 4 and len(set(base)) == 4
    edited = table["response"].tolist()
    edited[4] = edited[4] + " ещё"
    changed = chunk_keys(scorer, edited, table["symptoms"], table["anamnesis"], chunk_rows=3)
    assert [a == b for a, b in zip(base, changed)] == [True, False, True, True]
    other = NoteScorer(str(tiny_encoder_dir), LAYER - 1, batch_size=2)
    assert not set(chunk_keys(other, *args, chunk_rows=3)) & set(base)


def test_resumed_chunks_equal_unchunked_scores(scorer, tmp_path) -> None:
    chunked = _score(scorer, tmp_path / "scored.csv")
    plain = _score(scorer, None)
    np.testing.assert_allclose(chunked["symptoms_recall"], plain["symptoms_recall"], atol=1e-6)
    np.testing.assert_allclose(chunked["anamnesis_precision"], plain["anamnesis_precision"], atol=1e-6)
    assert chunked["passed_filter"].tolist() == plain["passed_filter"].tolist()


# Stated tolerance of the int8 path against fp32 on the tiny encoder (benchmarks/README.md has the
# figures of the embedded e5 on full-length notes).
INT8_TOLERANCE = 0.05


@pytest.mark.parametrize("precision", ["int8", "int8-attention"])
def test_int8_scores_agree_with_fp32(tiny_encoder_dir, precision) -> None:
    import torch

    fp32 = NoteScorer(str(tiny_encoder_dir), LAYER)
    int8 = NoteScorer(str(tiny_encoder_dir), LAYER, precision=precision)
    a = fp32.score(NOTES, SYMPTOMS, EXAMPLES, progress=False)
    b = int8.score(NOTES, SYMPTOMS, EXAMPLES, progress=False)
    for name in ("symptoms_recall", "anamnesis_precision"):
        difference = np.abs(a[name].to_numpy() - b[name].to_numpy())
        assert difference.max() < INT8_TOLERANCE
    assert int8.hash == f"{fp32.hash}_{precision}" and int8.device == "cpu"
    fp32_linear = [n for n, m in int8.model.named_modules() if type(m) is torch.nn.Linear]
    quantized = [n for n, m in int8.model.named_modules() if "quantized" in type(m).__module__
                 and "Linear" in type(m).__name__]
    assert quantized and all(".attention." in f".{n}." for n in quantized) == (precision != "int8")
    assert bool(fp32_linear) == (precision == "int8-attention")  # the feed-forward stays fp32


def test_precision_and_device_must_fit(tiny_encoder_dir, monkeypatch) -> None:
    monkeypatch.setenv("MEDSYN_CPU_BF16", "0")  # bf16 on CPU needs AVX512-BF16/AMX: none here
    with pytest.raises(ParameterError, match="needs AVX512-BF16 or AMX"):
        NoteScorer(str(tiny_encoder_dir), LAYER, precision="bf16", device="cpu")
    with pytest.raises(ParameterError, match="needs --device cuda"):
        NoteScorer(str(tiny_encoder_dir), LAYER, precision="fp16", device="cpu")
    with pytest.raises(ParameterError, match="CPU path"):
        NoteScorer(str(tiny_encoder_dir), LAYER, precision="int8", device="cuda")
    with pytest.raises(ParameterError, match="use one of"):
        NoteScorer(str(tiny_encoder_dir), LAYER, precision="fp8")
