"""The experiment: acc@k, subsets, settings and controls, a vocabulary no synthetic text can crowd."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import TOY_WORDS

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.downstream import experiment as ex
from medsyn_utils.downstream.classifiers import classifier_factory


def test_top_k_accuracy_on_a_hand_checkable_case():
    classes = ["A", "B", "C", "D"]
    scores = np.array([
        [0.10, 0.20, 0.30, 0.40],  # ranking D C B A; true A → in top 4 only
        [0.70, 0.10, 0.10, 0.10],  # ranking A, then B C D (ties by class order); true A → top 1
        [0.30, 0.40, 0.20, 0.10],  # ranking B A C D; true C → top 3
        [0.25, 0.25, 0.25, 0.25],  # all tied: A B C D; true E (never seen) → always wrong
    ])
    y = ["A", "A", "C", "E"]
    assert ex.top_k_accuracy(scores, y, classes, ks=(1, 2, 3, 4)) == {
        "acc@1": 0.25, "acc@2": 0.25, "acc@3": 0.5, "acc@4": 0.75}
    assert ex.correct_at_k(scores, y, classes, 3).tolist() == [False, True, True, False]
    assert ex.correct_at_k(scores[3:], ["B"], classes, 2).tolist() == [True]
    assert ex.correct_at_k(scores[3:], ["C"], classes, 2).tolist() == [False]
    with pytest.raises(ParameterError, match="do not match"):
        ex.top_k_accuracy(np.zeros((2, 3)), ["A"], ["A", "B", "C"])
    with pytest.raises(ParameterError, match="at least 1"):
        ex.correct_at_k(np.zeros((1, 2)), ["A"], ["A", "B"], 0)


def test_stratified_subset_keeps_every_code():
    frame = pd.DataFrame({"code": ["A"] * 1 + ["B"] * 2 + ["C"] * 10 + ["D"] * 37,
                          "text": [f"t{i}" for i in range(50)]})
    sizes = frame["code"].value_counts()
    for share in (0.01, 0.25, 0.5, 0.75):
        for seed in range(3):
            got = ex.stratified_subset(frame, share, seed=seed)["code"].value_counts()
            assert all(got[code] == max(1, round(n * share)) for code, n in sizes.items())
    a, b = ex.stratified_subset(frame, 0.5, seed=0), ex.stratified_subset(frame, 0.5, seed=1)
    assert set(a.index) != set(b.index) and ex.stratified_subset(frame, 0.5, seed=0).index.equals(a.index)
    assert ex.stratified_subset(frame, 0.0).empty and ex.stratified_subset(frame, 1.0).equals(frame)
    with pytest.raises(ParameterError, match="share"):
        ex.stratified_subset(frame, 1.5)


def test_rarest_codes_and_settings():
    codes = ["A"] * 2 + ["B"] * 3 + ["C"] * 10 + ["D"] * 20 + ["E"] * 40
    assert ex.rarest_codes(codes, 0.25) == ["A", "B"]  # counts 2 3 10 20 40: 25 % quantile is 3
    with pytest.raises(ParameterError):
        ex.rarest_codes(codes, 0.0)
    assert ex.setting_name(1, 0) == "real_only" and ex.setting_name(0.5, 0.25) == "real0.5_syn0.25"
    names = [s.name for s in ex.experiment_settings(False)]
    assert names == ["real_only", "real_synthetic", "synthetic_only", "real_oversampled",
                     "real_class_weighted"]
    assert len(ex.experiment_settings(True, controls=())) == 9
    with pytest.raises(ParameterError, match="unknown"):
        ex.experiment_settings(False, controls=["bogus"])


def test_oversampling_control_has_the_per_code_counts_of_real_plus_synthetic(toy):
    real, synthetic = toy(5, 0), toy(3, 1).iloc[[0, 1, 2, 5, 9, 17]]
    over = ex.oversample_real(real, synthetic, seed=0)
    expected = pd.concat([real, synthetic])["code"].value_counts().sort_index()
    assert over["code"].value_counts().sort_index().equals(expected)
    assert set(over["text"]) <= set(real["text"])  # no new text
    real_part, added = ex._training_set(ex.CONTROL_SETTINGS["oversampled"], real, synthetic, seed=0)
    assert added.empty and real_part["code"].value_counts().sort_index().equals(expected)
    recombined = ex.recombine_real(real, synthetic, seed=0)
    assert recombined["code"].value_counts().sort_index().equals(synthetic["code"].value_counts().sort_index())


def test_long_synthetic_notes_leave_real_only_unchanged_and_real_vocabulary_in_the_features(toy):
    real, dev, test = toy(12, 0), toy(4, 1), toy(5, 2)
    short = toy(6, 3, noise="пациент отмечает")
    # ten times longer notes full of words that no real note has
    filler = " ".join(f"синтетическоеслово{i}" for i in range(40))
    long = short.assign(text=short["text"] + " " + filler)
    make = classifier_factory("tfidf-svm", char_ngrams=None, min_df=1, max_features=50)
    runs = {}
    for name, synthetic in (("short", short), ("long", long)):
        reuse: dict = {}
        runs[name] = ex.run_settings(real, dev, test, synthetic, settings=ex.experiment_settings(False),
                                     seeds=1, make_model=make, progress=False, reuse=reuse)
        vocabulary = reuse["features"].features.vocabulary()
        real_words = {w for text in real["text"] for w in text.split()}
        assert {f"word__{w}" for w in real_words} <= vocabulary
        assert not any("синтетическоеслово" in v for v in vocabulary)
    for split in ("dev", "test"):
        np.testing.assert_array_equal(runs["short"].correctness["real_only"][split][1],
                                      runs["long"].correctness["real_only"][split][1])
    assert runs["long"].classifier["vocabulary_fitted_on"] == "real training notes only"


def test_grid_fits_deterministic_full_sets_once_and_random_ones_per_seed(toy, fast):
    real, dev, test, synthetic = toy(12, 0), toy(4, 1), toy(5, 2), toy(6, 3, noise="пациент отмечает")
    result = ex.run_settings(real, dev, test, synthetic, settings=ex.experiment_settings(True), seeds=2,
                             make_model=fast, progress=False)
    fits = result.runs.groupby("setting")["seed"].nunique()
    assert fits["real_only"] == 1 and fits["real_synthetic"] == 1 and fits["real_class_weighted"] == 1
    assert fits["real0.5_syn0.5"] == 2 and fits["real_oversampled"] == 2
    sizes = result.runs.drop_duplicates(["setting", "seed"]).set_index(["setting", "seed"])
    assert sizes.loc[("real0.5_syn0.5", 0), "n_train_real"] == 36  # half of 12 per code × 6 codes
    assert sizes.loc[("real0.5_syn0.5", 0), "n_train_added"] == 18
    assert sizes.loc[("real_oversampled", 0), "n_train_real"] == 12 * 6 + 6 * 6
    assert result.correctness["real_only"]["test"][1].shape == (1, len(test))
    summary = result.summary().set_index(["setting", "split"])
    assert np.isnan(summary.loc[("real_only", "test"), "acc@1 sd"])  # one fit: no fake ± 0.00
    hard = ex.lowest_dev_accuracy_codes(result, 0.25)
    assert hard and set(hard) <= set(TOY_WORDS)


def test_a_setting_without_training_codes_is_skipped_not_fatal(toy, fast):
    real, dev, test = toy(6, 0), toy(2, 1), toy(2, 2)
    synthetic = toy(3, 3).query("code == 'J06'")  # one code only
    result = ex.run_settings(real, dev, test, synthetic, settings=ex.experiment_settings(False), seeds=1,
                             make_model=fast, progress=False)
    assert "synthetic_only" in result.skipped and "real_synthetic" in result.correctness


def test_reuse_shares_fits_that_do_not_depend_on_synthetic_notes(toy, fast):
    real, dev, test = toy(6, 0), toy(2, 1), toy(2, 2)
    fitted: list[int] = []

    def counting(seed):
        model = fast(seed)
        original = model.fit_matrix
        model.fit_matrix = lambda m, labels, class_weight=None: (
            fitted.append(len(labels)), original(m, labels, class_weight))[1]
        return model

    reuse: dict = {}
    settings = ex.experiment_settings(False)
    ex.run_settings(real, dev, test, toy(2, 3), settings=settings, seeds=1, make_model=counting,
                    progress=False, reuse=reuse)
    assert len(fitted) == 5
    again = ex.run_settings(real, dev, test, toy(3, 4), settings=settings, seeds=1,
                            make_model=counting, progress=False, reuse=reuse)
    assert len(fitted) == 5 + 3  # real_only and real_class_weighted reused
    assert set(again.correctness) == {s.name for s in settings}


def test_a_shared_feature_cache_gives_the_same_numbers_as_separate_and_text_fits(toy):
    """Fast path (features transformed once, shared by the panel) = slow path (each fit on text)."""
    real, dev, test, synthetic = toy(8, 0), toy(3, 1), toy(4, 2), toy(4, 3, noise="пациент отмечает")
    settings = ex.experiment_settings(False, ("oversampled", "class_weighted", "recombined"))
    options = {"char_ngrams": None, "min_df": 1}
    cache: dict = {}
    shared, alone = {}, {}
    for kind in ("tfidf-svm", "tfidf-logreg"):
        make = classifier_factory(kind, **options)
        shared[kind] = ex.run_settings(real, dev, test, synthetic, settings=settings, seeds=2,
                                       make_model=make, progress=False,
                                       reuse={"feature_cache": cache}, n_jobs=1)
        alone[kind] = ex.run_settings(real, dev, test, synthetic, settings=settings, seeds=2,
                                      make_model=make, progress=False, n_jobs=1)
    assert len(cache) == 1  # same options: one vocabulary, one transform of the real notes
    other = ex.run_settings(real, dev, test, synthetic, settings=settings[:1], seeds=1,
                            make_model=classifier_factory("tfidf-svm", char_ngrams=(2, 3), min_df=1),
                            progress=False, reuse={"feature_cache": cache})
    assert len(cache) == 2 and other.classifier["char_ngrams"] == [2, 3]
    for kind in shared:
        for name, per_split in alone[kind].correctness.items():
            for split, per_k in per_split.items():
                for k, values in per_k.items():
                    np.testing.assert_array_equal(shared[kind].correctness[name][split][k], values)
    # the slow path: a fresh classifier fitted on the texts of real_only
    model = classifier_factory("tfidf-logreg", **options)(0).fit(list(real["text"]), list(real["code"]))
    correct = ex.correct_at_k(model.scores(list(test["text"])), test["code"], model.classes_, 1)
    np.testing.assert_array_equal(shared["tfidf-logreg"].correctness["real_only"]["test"][1][0], correct)
