"""Toy data for the downstream tests: each code has its own words, so a classifier learns it in a blink."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

TOY_WORDS = {
    "J06": "насморк горло першит", "I10": "давление головокружение шум", "K29": "изжога эпигастрий тошнота",
    "M54": "поясница спина прострел", "E11": "жажда сухость сахар", "N30": "мочеиспускание рези жжение",
}

HELD = pd.DataFrame({
    "idx": ["qdev1", "qtest1", "qtest2"],
    "text": ["Жалобы на  кашель с мокротой, насморк в течение недели.",
             "Боль в эпигастрии после еды, изжога, тошнота по утрам.",
             "Жалоб нет"],
})


def make_toy(n_per_code: int, seed: int, noise: str = "жалобы на", length: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for code, words in TOY_WORDS.items():
        vocab = words.split()
        for _ in range(n_per_code):
            picked = rng.choice(vocab, size=length, replace=length > len(vocab))
            rows.append({"text": f"{noise} {' '.join(picked)}", "code": code})
    return pd.DataFrame(rows)


def make_published(rows: list[dict]) -> pd.DataFrame:
    base = {"idx": 0, "ICD-10": "J06.9", "generation_model": "model-x", "prompt": "p", "prior": "s+a",
            "example": True, "example_source": "RuMedPrime", "response": "Жалобы на насморк.",
            "symptoms": "насморк", "anamnesis": "Жалобы на головную боль.",
            "symptoms_recall": 0.8, "anamnesis_precision": 0.8}
    return pd.DataFrame([{**base, "idx": i, **row} for i, row in enumerate(rows)])


@pytest.fixture
def toy():
    return make_toy


@pytest.fixture
def published():
    return make_published


@pytest.fixture
def fast():
    """``seed → classifier``: word n-grams only, seconds on toy data."""
    from medsyn_utils.downstream.classifiers import classifier_factory

    return classifier_factory("tfidf-svm", char_ngrams=None, min_df=1)


@pytest.fixture(autouse=True)
def _own_embedding_cache(monkeypatch, tmp_path_factory):
    """e5-logreg reads and fills the user's embedding cache: the tests use their own."""
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "medsyn-cache"))
