"""Classifiers: one interface (fit, scores, top_k, classes_), options checked before any fit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOY_WORDS

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.downstream import classifiers as cl
from medsyn_utils.downstream.experiment import run_settings
from medsyn_utils.downstream.transformer import TransformerClassifier


@pytest.mark.parametrize("kind, options", [("tfidf-svm", {}), ("tfidf-logreg", {"solver": "lbfgs"}),
                                           ("tfidf-logreg", {"solver": "sgd"})])
def test_linear_classifiers_interface(toy, kind, options):
    train = toy(8, seed=0)
    model = cl.make_classifier(kind, min_df=1, **options).fit(train["text"], train["code"])
    texts = ["жалобы на изжога тошнота", "жалобы на жажда сахар"]
    assert model.scores(texts).shape == (2, len(TOY_WORDS))
    assert [row[0] for row in model.top_k(texts, k=3)] == ["K29", "E11"]
    assert model.deterministic and model.describe()["name"] == kind
    assert model.describe()["vocabulary_fitted_on"] == "real training notes only"
    with pytest.raises(ParameterError, match="at least 2"):
        cl.make_classifier(kind).fit(["a", "b"], ["J06", "J06"])


def test_class_weighted_fit_changes_the_model_on_imbalanced_data(toy):
    train = toy(10, 0)
    train = train[(train["code"] != "N30") | (train.index % 10 == 0)]  # N30 rare
    plain = cl.make_classifier("tfidf-svm", min_df=1, C=0.05).fit(train["text"], train["code"])
    weighted = cl.make_classifier("tfidf-svm", min_df=1, C=0.05).fit(train["text"], train["code"],
                                                                      class_weight="balanced")
    texts = list(toy(3, 5)["text"])
    assert not np.allclose(plain.scores(texts), weighted.scores(texts))
    weights = cl.balanced_weights(["a", "a", "a", "b"])
    assert weights == {"a": pytest.approx(4 / 6), "b": pytest.approx(2.0)}


def test_sgd_logreg_minimises_the_objective_of_logistic_regression_with_the_same_C():
    """Known answer: ``solver: sgd`` with alpha = 1 / (C n) reaches the optimum of sklearn's
    ``LogisticRegression(C)`` (two classes: one-vs-rest is the binary model)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(-1, 1, (100, 3)), rng.normal(1, 1, (100, 3))])
    y = np.array(["a"] * 100 + ["b"] * 100)
    sign = np.where(y == "b", 1.0, -1.0)

    def objective(w, b):  # ½‖w‖² + C Σ log(1 + exp(−y (xw + b))), C = 1
        return 0.5 * w @ w + np.logaddexp(0, -sign * (x @ w + b)).sum()

    model = cl.make_classifier("tfidf-logreg", solver="sgd", C=1.0, max_iter=1000).fit_matrix(x, list(y))
    assert model.model_.alpha == pytest.approx(1 / 200)
    reference = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    ours = objective(model.model_.coef_[0], model.model_.intercept_[0])
    best = objective(reference.coef_[0], reference.intercept_[0])
    assert best <= ours <= best * 1.001
    np.testing.assert_allclose(model.model_.coef_[0], reference.coef_[0], atol=0.05)
    assert model.describe()["solver"].startswith("sgd")


def test_sgd_logreg_is_deterministic_and_weights_classes(toy):
    """The shuffle seed is fixed: any seed gives the same model (a full set is fitted once)."""
    train = toy(10, 0)
    train = train[(train["code"] != "N30") | (train.index % 10 == 0)]  # N30 rare
    texts = list(toy(3, 5)["text"])
    fits = [cl.make_classifier("tfidf-logreg", solver="sgd", min_df=1, seed=seed)
            .fit(train["text"], train["code"]) for seed in (0, 7)]
    np.testing.assert_array_equal(fits[0].scores(texts), fits[1].scores(texts))
    weighted = cl.make_classifier("tfidf-logreg", solver="sgd", min_df=1).fit(
        train["text"], train["code"], class_weight="balanced")
    assert not np.allclose(weighted.scores(texts), fits[0].scores(texts))
    with pytest.raises(ParameterError, match="solver='newton'"):
        cl.make_classifier("tfidf-logreg", solver="newton")
    with pytest.raises(ParameterError, match="solver"):
        cl.make_classifier("tfidf-svm", solver="sgd")
    with pytest.raises(ParameterError, match="max_iter=0"):
        cl.make_classifier("tfidf-logreg", max_iter=0)


def test_make_classifier_checks_kind_and_options():
    assert isinstance(cl.make_classifier("tfidf-svm", C=1.0), cl.TfidfLinear)
    assert isinstance(cl.make_classifier("transformer", encoder="x"), TransformerClassifier)
    with pytest.raises(ParameterError, match="unknown"):
        cl.make_classifier("svm")
    with pytest.raises(ParameterError, match="epochs"):
        cl.make_classifier("tfidf-svm", epochs=3)
    with pytest.raises(ParameterError, match="unknown"):
        cl.classifier_factory("svm")
    with pytest.raises(ParameterError, match="max_features"):
        cl.classifier_factory("tfidf-svm", max_features=1)
    with pytest.raises(ModelError, match="not fitted"):
        cl.make_classifier("tfidf-svm").scores(["x"])


def test_transformer_classifier_same_interface_on_a_tiny_encoder(tiny_encoder_dir, toy):
    train = toy(4, seed=0)
    model = TransformerClassifier(str(tiny_encoder_dir), max_steps=2, batch_size=8, max_length=32, seed=0)
    assert model.fit(train["text"], train["code"], class_weight="balanced") is model
    scores = model.scores(["жалобы на изжога", "жалобы на насморк", "давление"])
    assert scores.shape == (3, len(TOY_WORDS)) and np.allclose(scores.sum(axis=1), 1, atol=1e-5)
    assert len(model.top_k(["жалобы на изжога"], k=3)[0]) == 3
    assert model.describe()["device"] in ("cpu", "cuda")
    result = run_settings(train, toy(2, 1), toy(2, 2), toy(2, 3), settings=[(1.0, 0.0)], seeds=2,
                          make_model=cl.classifier_factory("transformer", encoder=str(tiny_encoder_dir),
                                                           max_steps=1, batch_size=8, max_length=32),
                          progress=False)
    assert result.runs["seed"].nunique() == 2  # not deterministic: one fit per seed


def test_transformer_classifier_names_an_encoder_it_cannot_load(tmp_path):
    with pytest.raises(ModelError, match="cannot be loaded"):
        TransformerClassifier(str(tmp_path / "missing")).fit(["a", "b"], ["A", "B"])


def test_dev_search_ranks_candidates_and_options_pass_through(toy, monkeypatch):
    from medsyn_utils.downstream import tuning

    grid = [{"min_df": 1, "char_ngrams": None, "C": c} for c in (0.001, 1.0)]
    search = tuning.search_on_dev(toy(8, 0), toy(3, 1), grid=grid)
    assert list(search["acc@1"]) == sorted(search["acc@1"], reverse=True) and len(search) == 2
    best = tuning.best_options(search)
    assert set(best) == {"min_df", "char_ngrams", "C"} and best["char_ngrams"] is None
    assert tuning.choose_options("tfidf-svm", {"C": 2.0}) == ({"C": 2.0}, None, None)
    assert tuning.choose_options("transformer", {"encoder": "x"}, tune=True)[1] is None
    # tfidf-logreg and e5-logreg search their C (the SVM's C values would be far off), with the
    # fixed options (here the solver) kept for every candidate
    assert tuning.dev_grid("tfidf-logreg") == tuple({"C": c} for c in tuning.PANEL_C_GRID["tfidf-logreg"])
    assert tuning.dev_grid("tfidf-svm") == tuning.DEV_SEARCH_GRID
    search = tuning.search_on_dev(toy(8, 0), toy(3, 1), kind="tfidf-logreg",
                                  grid=[{"C": 0.001}, {"C": 10.0}],
                                  options={"solver": "sgd", "min_df": 1})
    assert set(search["C"]) == {0.001, 10.0} and tuning.best_options(search) == {"C": search["C"][0]}


def test_embedding_classifier_same_interface_on_a_tiny_encoder(tiny_encoder_dir, toy, monkeypatch,
                                                               tmp_path):
    from medsyn_utils.downstream import embedding
    from medsyn_utils.score.embeddings import SCORING_PRECISION, embed_texts

    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(embedding, "_CACHE", {})
    train = toy(6, seed=0)
    model = cl.make_classifier("e5-logreg", encoder=str(tiny_encoder_dir), C=100.0)
    assert model.fit(train["text"], train["code"]) is model and model.deterministic
    texts = ["жалобы на изжога тошнота", "жалобы на жажда сахар"]
    scores = model.scores(texts)
    assert scores.shape == (2, len(TOY_WORDS))
    assert model.describe()["pooling"].startswith("mean")
    assert model.describe()["layer"] == 4  # the tiny encoder has 4 layers (< scoring's 9)
    vectors = embedding.embed(texts, str(tiny_encoder_dir))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedding.embed(texts[::-1], str(tiny_encoder_dir)), vectors[::-1])  # cached, same rows
    # known answer: scoring's pooled vectors (score.embeddings.embed_texts), L2-normalised
    pooled = embed_texts(texts, encoder=str(tiny_encoder_dir), layer=4, precision=SCORING_PRECISION)
    assert np.allclose(vectors, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), atol=1e-6)
    # the same training set gives the same model: fitted once per setting, like the TF-IDF pair
    again = cl.make_classifier("e5-logreg", encoder=str(tiny_encoder_dir), C=100.0).fit(train["text"], train["code"])
    assert np.allclose(again.scores(texts), scores)
    with pytest.raises(ParameterError, match="epochs"):
        cl.make_classifier("e5-logreg", epochs=2)
    with pytest.raises(ParameterError, match="C=0"):
        cl.make_classifier("e5-logreg", C=0)
    with pytest.raises(ParameterError, match="layer=0"):
        cl.make_classifier("e5-logreg", layer=0)
    with pytest.raises(ModelError, match="not fitted"):
        cl.make_classifier("e5-logreg").scores(["x"])


def test_embedding_vectors_come_from_the_cache_scoring_fills(tiny_encoder_dir, monkeypatch, tmp_path):
    """A vector scoring stored is read, not recomputed: plant a known vector in the cache."""
    from medsyn_utils.downstream import embedding
    from medsyn_utils.score.embedding_cache import cache_for
    from medsyn_utils.score.embeddings import SCORING_PRECISION, embedding_scorer

    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(embedding, "_CACHE", {})
    scorer = embedding_scorer(encoder=str(tiny_encoder_dir), layer=4, precision=SCORING_PRECISION)
    planted = np.zeros(scorer.model.config.hidden_size, dtype=np.float32)
    planted[:2] = (3.0, 4.0)
    cache_for(scorer).put({"заметка из кэша": planted})
    vector = embedding.embed(["заметка из кэша"], str(tiny_encoder_dir))[0]
    assert np.allclose(vector[:2], (0.6, 0.8)) and np.allclose(vector[2:], 0.0)


def test_no_import_cycle_between_the_classifier_modules():
    """classifiers imports transformer and embedding; neither imports classifiers (their shared
    interface lives in downstream/base.py), so no import needs to be lazy to break a cycle."""
    import ast
    from pathlib import Path

    import medsyn_utils.downstream as package

    folder = Path(package.__file__).parent
    for name in ("transformer", "embedding", "base"):
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        assert not any(m and m.endswith("downstream.classifiers") for m in imported), name
    assert cl.CodeClassifier is __import__("medsyn_utils.downstream.base", fromlist=["x"]).CodeClassifier
    from medsyn_utils.downstream.config import DownstreamConfig

    assert cl.PANEL[0] == DownstreamConfig.defaults()["classifier"] and set(cl.PANEL) <= set(cl.CLASSIFIERS)


@pytest.mark.parametrize("kind", ["tfidf-svm", "tfidf-logreg", "e5-logreg"])
@pytest.mark.parametrize("C", [float("nan"), float("inf"), 0.0, -1.0])
def test_a_non_finite_or_non_positive_C_is_refused_before_any_fit(kind, C):
    with pytest.raises(ParameterError, match="finite positive"):
        cl.classifier_factory(kind, C=C)
