"""The corpus summary end to end on a small table of real notes standing in for generated ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.evaluate import corpus


@pytest.fixture(scope="module")
def real(data_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, heldout = corpus.real_reference("full")
    return train.iloc[:120].reset_index(drop=True), heldout.iloc[:60].reset_index(drop=True)


def _notes(train: pd.DataFrame, heldout: pd.DataFrame) -> pd.DataFrame:
    """40 notes, 2 models: model A copies train note 5 once and repeats one note twice."""
    texts = heldout["text"].iloc[20:60].tolist()
    texts[0] = "Со слов больного: " + train["text"].iloc[5]
    texts[2] = texts[1]
    return pd.DataFrame({
        "idx": [f"n{i}" for i in range(40)], "response": texts,
        "generation_model": ["A"] * 20 + ["B"] * 20, "prior": "symptoms+example",
        "category": heldout["code"].iloc[20:60].to_numpy(),
        "anamnesis": train["text"].iloc[:40].to_numpy(), "example_visit_id": train["idx"].iloc[:40].to_numpy(),
        "sex": ["male", "female"] * 20, "age": np.arange(40) * 2 + 10,
        "symptoms_recall": np.r_[np.full(20, 0.9), np.full(20, 0.7)] + np.tile([0.0, -0.2], 20),
    })


def test_corpus_summary_known_answers(real, tmp_path):
    train, heldout = real
    notes = _notes(train, heldout)
    scores = pd.DataFrame({"idx": notes["idx"], "coverage": np.linspace(0, 1, 40), "label": "x"})
    result = corpus.corpus_summary(notes, train, heldout.iloc[:20], embed=corpus.hashed_ngram_embed,
                                   out_dir=tmp_path, seed=3, per_note=scores)
    per_note = result.pop("per_note")
    json.dumps(result)  # everything else is JSON-ready
    assert list(per_note.columns) == list(corpus.PER_NOTE_COLUMNS) and len(per_note) == 40
    # the copied note is flagged with its source visit; it is train note 5, also an example here
    copied = per_note.set_index("idx").loc["n0"]
    assert copied["copied_visit_id"] == train["idx"].iloc[5] and copied["copied_words"] >= 8
    assert copied["dcr_visit_id"] == train["idx"].iloc[5]
    assert per_note.set_index("idx").loc["n3", "copied_words"] == 0
    # style examples (40 train notes) are not in the realism reference
    assert result["reference"]["n_excluded_style_examples"] == 40
    assert result["reference"]["n_train_reference"] == 80
    # the two identical notes form one cluster, written with why they group
    clusters = pd.read_parquet(tmp_path / corpus.NEAR_DUPLICATE_FILE)
    assert sorted(clusters["idx"]) == ["n1", "n2"] and set(clusters["generation_model"]) == {"A"}
    assert len(clusters.iloc[0]["shared_trigrams"]) > 0
    groups = {g["generation_model"]: g for g in result["groups"]}
    assert groups["A"]["diversity"]["near_duplicates_all_notes"]["clusters"] == 1
    assert groups["B"]["diversity"]["near_duplicates_all_notes"]["clusters"] == 0
    # real held-out notes share 8-word spans with train notes too (same patients' repeat visits):
    # the ceiling says how often
    copied = groups["A"]["privacy"]["copied_share"]
    assert copied["value"] >= 1 / 20 and 0 <= copied["ceiling"] <= 1
    realism = groups["B"]["realism"]
    assert 0 <= realism["mauve"]["value"] <= 1 and 0 <= realism["mauve"]["ceiling"] <= 1
    assert realism["n_synthetic"] == 20 and set(realism["shape_js"]) >= {"characters", "vocabulary"}
    assert realism["frechet"]["spread"] >= 0 and realism["shape_js"]["vocabulary"]["ceiling_spread"] >= 0
    assert groups["B"]["diversity"]["vendi"]["spread"] >= 0 and groups["B"]["diversity"]["n"] == 20
    # sizes below the documented minimum are said
    assert any("B / symptoms+example: realism uses 20 notes" in w for w in result["warnings"])
    fair = groups["A"]["fairness"]["by"]
    assert set(fair) == {"sex", "age_group"} and "coverage" in fair["sex"] and "label" not in fair["sex"]
    assert fair["sex"]["coverage"]["groups"]["male"]["n"] == 10
    # model A: men 0.9, women 0.7 → a gap of 0.2 in symptoms_recall, with an interval around it
    recall = fair["sex"]["symptoms_recall"]
    assert recall["gap"] == pytest.approx(0.2) and recall["groups"]["female"]["mean"] == pytest.approx(0.7)


def test_real_notes_against_themselves_sit_at_the_ceiling(real):
    """Held-out real notes posing as notes: MAUVE near its ceiling, AUC near 0.5."""
    train, heldout = real
    notes = pd.DataFrame({"idx": heldout["idx"].iloc[30:], "response": heldout["text"].iloc[30:],
                          "generation_model": "real", "prior": "none"})
    result = corpus.corpus_summary(notes, train, heldout.iloc[:30], embed=corpus.hashed_ngram_embed,
                                   out_dir=None, seed=0)
    real_group = result["groups"][0]["realism"]
    assert abs(real_group["auc_embeddings"]["value"] - 0.5) < 0.2
    assert real_group["mauve"]["value"] > 0.8
    assert result["per_note"]["sex_consistent"].isna().all()  # no task sex: no verdict


def test_bad_inputs_are_named(real):
    train, heldout = real
    notes = pd.DataFrame({"idx": ["a"], "response": ["текст"], "generation_model": ["m"]})
    with pytest.raises(InputTableError, match="notes table lacks prior"):
        corpus.corpus_summary(notes, train, heldout, embed=corpus.hashed_ngram_embed, out_dir=None, seed=0)
    notes["prior"] = "code"
    with pytest.raises(ParameterError, match="seed"):
        corpus.corpus_summary(notes, train, heldout, embed=corpus.hashed_ngram_embed, out_dir=None, seed=-1)
    with pytest.raises(InputTableError, match="real_heldout lacks"):
        corpus.corpus_summary(notes, train, heldout.drop(columns="text"), embed=corpus.hashed_ngram_embed,
                              out_dir=None, seed=0)
    with pytest.raises(InputTableError, match="embed returned"):
        corpus.corpus_summary(notes, train, heldout, embed=lambda t: np.zeros((1, 3)), out_dir=None, seed=0)


def test_e5_embed_is_the_kits_encoder_through_the_shared_cache(tmp_path, monkeypatch):
    from medsyn_utils.score.scorer import NoteScorer

    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path))
    texts = ["Болит горло три дня.", "Сухой кашель по ночам.", "Болит горло три дня.", ""]
    first = corpus.e5_embed(texts)
    assert first.shape == (4, 384) and np.allclose(np.linalg.norm(first[:3], axis=1), 1, atol=1e-4)
    assert np.allclose(first[0], first[2]) and not np.allclose(first[0], first[1])
    assert not first[3].any()  # an empty note: a zero vector, not NaN

    def no_embedding(self, texts):
        raise AssertionError(f"embedded again: {texts}")

    monkeypatch.setattr(NoteScorer, "embed", no_embedding)  # the second call reads the cache
    assert np.allclose(corpus.e5_embed(texts[::-1]), first[::-1])


def test_with_task_columns_joins_sex_and_age_on_the_task_id():
    notes = pd.DataFrame({"idx": ["t2", "t1", "t9"], "response": ["a", "b", "c"]})
    tasks = pd.DataFrame({"task_id": ["t1", "t2"], "sex": ["female", "male"], "age": [30, 70]})
    joined = corpus.with_task_columns(notes, tasks)
    assert list(joined["idx"]) == ["t2", "t1", "t9"] and list(joined["sex"][:2]) == ["male", "female"]
    assert joined["age"].isna().tolist() == [False, False, True]
