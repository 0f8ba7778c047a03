"""The corpus metrics' text vectors: the encoder's through the shared embedding cache (a tiny
encoder stands in for e5), the hashed stand-in, and the record of which were used."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.evaluate import corpus, vectors
from medsyn_utils.score.scorer import NoteScorer

LAYER = 2


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, pd.DataFrame]:
    train, heldout = corpus.real_reference("full")
    return train.iloc[:60].reset_index(drop=True), heldout.iloc[:30].reset_index(drop=True)


def _notes(heldout: pd.DataFrame) -> pd.DataFrame:
    texts = [f"Жалобы на кашель {i} дней, температура до 38." for i in range(12)] + [""]
    return pd.DataFrame({"idx": [f"n{i}" for i in range(13)], "response": texts,
                         "generation_model": "A", "prior": "symptoms",
                         "category": heldout["code"].iloc[:13].to_numpy()})


def _fresh(encoder_dir, texts: list[str]) -> np.ndarray:
    """The texts embedded by a new scorer, no cache: mean-pooled, L2-normalised."""
    states = NoteScorer(str(encoder_dir), LAYER, device="cpu").embed(texts)
    pooled = np.stack([states[t.strip()].mean(dim=0).numpy() for t in texts])
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_reference_vectors_come_from_the_cache_the_second_time(real, tiny_encoder_dir, tmp_path,
                                                               monkeypatch):
    train, heldout = real
    notes = _notes(heldout)
    options = dict(encoder=str(tiny_encoder_dir), layer=LAYER, precision="fp32",
                   cache_dir=tmp_path, device="cpu")
    distinct = len(set(train["text"].str.strip()) | set(heldout["text"].str.strip())
                   | set(notes["response"].str.strip()) - {""})
    first_source = vectors.EncoderVectors(**options)
    first = corpus.corpus_summary(notes, train, heldout, embed=first_source, out_dir=None, seed=0)
    record = first["vectors"]
    assert (record["kind"], record["layer"], record["precision"]) == ("e5", LAYER, "fp32")
    assert record["texts"] == distinct and record["embedded"] == distinct and record["from_cache"] == 0
    assert record["cache_key"] and str(tmp_path) in record["cache_file"]
    reference = [*train["text"], *heldout["text"]]
    fresh = _fresh(tiny_encoder_dir, reference)

    forward = []
    monkeypatch.setattr(NoteScorer, "embed", lambda self, texts: forward.append(texts) or {})
    second_source = vectors.EncoderVectors(**options)  # a later run: a new source, the same cache
    second = corpus.corpus_summary(notes, train, heldout, embed=second_source, out_dir=None, seed=0)
    assert forward == []  # no text went through the encoder again
    assert second["vectors"]["from_cache"] == distinct and second["vectors"]["embedded"] == 0
    cached = second_source(reference)
    assert forward == []
    np.testing.assert_allclose(cached, fresh, atol=1e-5)
    # the same vectors give the same metrics
    for part in ("realism", "privacy"):
        assert json.dumps(second["groups"][0][part], sort_keys=True) == \
            json.dumps(first["groups"][0][part], sort_keys=True)


def test_an_empty_text_is_a_zero_vector_and_repeats_embed_once(tiny_encoder_dir, tmp_path):
    source = vectors.EncoderVectors(str(tiny_encoder_dir), LAYER, precision="fp32",
                                    cache_dir=tmp_path, device="cpu")
    texts = ["Болит горло три дня.", " Болит горло три дня. ", "", "Сухой кашель по ночам."]
    out = source(texts)
    assert out.shape[0] == 4 and not out[2].any()
    np.testing.assert_array_equal(out[0], out[1])
    assert np.allclose(np.linalg.norm(out[[0, 1, 3]], axis=1), 1, atol=1e-5)
    assert source.record()["embedded"] == 2 and source.record()["texts"] == 2


def test_hashed_vectors_and_the_kinds():
    source = vectors.vectors_for("hashed")
    out = source(["Болит горло.", "Кашель."])
    assert out.shape == (2, vectors.HASHED_DIM)
    np.testing.assert_array_equal(out, vectors.hashed_ngram_embed(["Болит горло.", "Кашель."]))
    assert source.record()["kind"] == "hashed" and source.record()["texts"] == 2
    assert isinstance(vectors.vectors_for("e5"), vectors.EncoderVectors)  # nothing loads yet
    assert vectors.vectors_record(lambda t: None)["kind"] == "custom"
    with pytest.raises(ParameterError, match="corpus_embed 'bert' is unknown"):
        vectors.vectors_for("bert")


def test_reference_max_samples_each_real_set_but_spans_search_all_train():
    train, heldout = corpus.real_reference("full")
    train, heldout = train.iloc[:400].reset_index(drop=True), heldout.iloc[:300].reset_index(drop=True)
    texts = heldout["text"].iloc[:30].tolist()
    texts[0] = "Со слов больного: " + train["text"].iloc[399]
    notes = pd.DataFrame({"idx": [f"n{i}" for i in range(30)], "response": texts,
                          "generation_model": "A", "prior": "symptoms"})
    seen = []

    def embed(batch):
        seen.extend(batch)
        return vectors.hashed_ngram_embed(batch)

    result = corpus.corpus_summary(notes, train, heldout, embed=embed, out_dir=None, seed=4,
                                   reference_max=200)
    ref = result["reference"]
    assert (ref["n_train"], ref["n_heldout"], ref["reference_max"]) == (200, 200, 200)
    assert (ref["n_train_available"], ref["n_heldout_available"]) == (400, 300)
    embedded_real = set(seen) - set(texts)
    assert len(embedded_real & set(train["text"])) <= 200 and len(embedded_real & set(heldout["text"])) <= 200
    # the copied train note is outside the sample (seed 4), yet found by its words with its visit id
    assert train["text"].iloc[399] not in seen
    copied = result["per_note"].set_index("idx").loc["n0"]
    assert copied["copied_visit_id"] == train["idx"].iloc[399] and copied["copied_words"] >= 8
    again = corpus.corpus_summary(notes, train, heldout, embed=vectors.hashed_ngram_embed, out_dir=None,
                                  seed=4, reference_max=200)
    assert json.dumps(again["groups"], sort_keys=True) == json.dumps(result["groups"], sort_keys=True)
    whole = corpus.corpus_summary(notes, train, heldout, embed=vectors.hashed_ngram_embed, out_dir=None,
                                  seed=4, reference_max=0)
    assert (whole["reference"]["n_train"], whole["reference"]["n_heldout"]) == (400, 300)
    with pytest.raises(ParameterError, match="reference_max 50 must be 0"):
        corpus.corpus_summary(notes, train, heldout, embed=embed, out_dir=None, seed=4, reference_max=50)


def test_the_stage_config_refuses_a_cap_below_the_minimum():
    from medsyn_utils.evaluate.config import EvaluationConfig

    assert EvaluationConfig.defaults()["corpus_embed"] == "e5"
    assert EvaluationConfig.check({"corpus_reference_max": corpus.MIN_REFERENCE}).corpus_reference_max == 200
    with pytest.raises(ParameterError, match=r"corpus_reference_max=50 is not accepted.*200 or more"):
        EvaluationConfig.check({"corpus_reference_max": 50})
