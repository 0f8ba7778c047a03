"""Realism against real notes: known answers on real notes from the mirror and on made-up vectors."""

from __future__ import annotations

import numpy as np
import pytest

from medsyn_utils.core.corpus import load_rumedtop3
from medsyn_utils.evaluate import realism
from medsyn_utils.evaluate.corpus import hashed_ngram_embed


@pytest.fixture(scope="module")
def real_texts(data_dir) -> list[str]:
    frame = load_rumedtop3("train")
    return frame["text"].sample(n=160, random_state=0).tolist()


def test_mauve_of_real_notes_against_themselves_is_near_one_and_against_other_text_low(real_texts):
    vecs = hashed_ngram_embed(real_texts[:60])
    same = realism.mauve_scores(vecs, vecs, seeds=[0, 1])
    assert same["mean"] > 0.95 and len(same["values"]) == 2 and same["spread"] >= 0
    other = hashed_ngram_embed([f"Lorem ipsum dolor sit amet {i} consectetur" for i in range(60)])
    assert realism.mauve_scores(vecs, other, seeds=[0])["mean"] < 0.5


def test_two_sample_auc_near_half_for_two_halves_of_real_notes_and_high_for_a_template(real_texts):
    a, b = real_texts[:80], real_texts[80:]
    emb = realism.two_sample_auc_embeddings(hashed_ngram_embed(a), hashed_ngram_embed(b), seed=0)
    chars = realism.two_sample_auc_chars(a, b, seed=0)
    assert abs(emb["mean"] - 0.5) < 0.15 and abs(chars["mean"] - 0.5) < 0.15
    templated = [f"Со слов пациента, беспокоит: {t} Состояние удовлетворительное." for t in b]
    assert realism.two_sample_auc_chars(a, templated, seed=0)["mean"] > 0.9
    assert realism.two_sample_auc_embeddings(hashed_ngram_embed(a), hashed_ngram_embed(templated),
                                             seed=0)["mean"] > 0.9


def test_frechet_distance_is_zero_for_one_set_and_the_squared_shift_for_a_moved_one():
    x = np.random.default_rng(0).normal(size=(200, 5))
    assert realism.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([3.0, 0, 0, 4.0, 0])
    assert realism.frechet_distance(x, x + shift) == pytest.approx(25.0, rel=1e-6)


def test_js_divergence_is_finite_and_bounded_where_kl_would_be_infinite():
    assert realism.js_divergence(np.array([1, 2, 3]), np.array([1, 2, 3])) == pytest.approx(0.0)
    assert realism.js_divergence(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert realism.vocabulary_js(["боль в горле"], ["кашель сухой"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-empty"):
        realism.js_divergence(np.array([0, 0]), np.array([1, 1]))


def test_shape_divergences_see_a_length_change(real_texts):
    same = realism.shape_divergences(real_texts[:80], real_texts[80:])
    longer = realism.shape_divergences(real_texts[:80], [t + " " + t + " " + t for t in real_texts[80:]])
    assert set(same) == {"characters", "sentences", "words_per_sentence", "vocabulary"}
    assert all(0 <= v <= 1 for v in same.values())
    assert longer["characters"] > same["characters"] + 0.2


def test_sentence_count_and_words():
    assert realism.sentence_count("Болит горло. Кашель! Температура 38") == 3
    assert realism.sentence_count("") == 0
    assert realism.words("Боль в горле, t 38.5") == ["боль", "в", "горле", "t"]
