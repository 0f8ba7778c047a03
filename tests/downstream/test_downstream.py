"""The downstream ICD experiment: acc@k, stratified subsets, the leakage guard, the settings grid."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.downstream import experiment as ds
from medsyn_utils.core.errors import InputTableError, ParameterError

# Toy task: each code has its own words, so a classifier can learn it in a blink.
TOY_WORDS = {
    "J06": "насморк горло першит", "I10": "давление головокружение шум", "K29": "изжога эпигастрий тошнота",
    "M54": "поясница спина прострел", "E11": "жажда сухость сахар", "N30": "мочеиспускание рези жжение",
}


def _toy(n_per_code: int, seed: int, noise: str = "жалобы на") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for code, words in TOY_WORDS.items():
        vocab = words.split()
        for _ in range(n_per_code):
            picked = rng.choice(vocab, size=2, replace=False)
            rows.append({"text": f"{noise} {' '.join(picked)}", "code": code})
    return pd.DataFrame(rows)


def _fast(seed: int) -> ds.TfidfLogReg:
    return ds.TfidfLogReg(char_ngrams=None, max_features=2000, seed=seed)


# ------------------------------------------------------------------------------------ acc@k

def test_top_k_accuracy_on_a_hand_checkable_case():
    classes = ["A", "B", "C", "D"]
    scores = np.array([
        [0.10, 0.20, 0.30, 0.40],  # ranking D C B A; true A → in top 4 only
        [0.70, 0.10, 0.10, 0.10],  # ranking A, then B C D (ties by class order); true A → top 1
        [0.30, 0.40, 0.20, 0.10],  # ranking B A C D; true C → top 3
        [0.25, 0.25, 0.25, 0.25],  # all tied: A B C D; true E (never seen) → always wrong
    ])
    y = ["A", "A", "C", "E"]
    acc = ds.top_k_accuracy(scores, y, classes, ks=(1, 2, 3, 4))
    assert acc == {"acc@1": 0.25, "acc@2": 0.25, "acc@3": 0.5, "acc@4": 0.75}
    assert ds.correct_at_k(scores, y, classes, 3).tolist() == [False, True, True, False]
    # ties are broken by class order (stable): with all equal, B is inside the top 2, C is not
    assert ds.correct_at_k(scores[3:], ["B"], classes, 2).tolist() == [True]
    assert ds.correct_at_k(scores[3:], ["C"], classes, 2).tolist() == [False]


def test_top_k_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ParameterError, match="do not match"):
        ds.top_k_accuracy(np.zeros((2, 3)), ["A"], ["A", "B", "C"])
    with pytest.raises(ParameterError, match="at least 1"):
        ds.correct_at_k(np.zeros((1, 2)), ["A"], ["A", "B"], 0)


# ------------------------------------------------------------------------------------ codes

@pytest.mark.parametrize("code, category", [
    ("J06.9", "J06"), ("j06", "J06"), (" M54.50 ", "M54"), ("М54.5", "M54"),  # Cyrillic М
    ("К29", "K29"), ("Z00.00", "Z00"), ("bad", None), ("", None), (None, None), (float("nan"), None),
])
def test_to_category(code, category):
    assert ds.to_category(code) == category


# ------------------------------------------------------------------------------------ subsets

def test_stratified_subset_keeps_every_code():
    frame = pd.DataFrame({"code": ["A"] * 1 + ["B"] * 2 + ["C"] * 10 + ["D"] * 37,
                          "text": [f"t{i}" for i in range(50)]})
    sizes = frame["code"].value_counts()
    for share in (0.01, 0.25, 0.5, 0.75):
        for seed in range(3):
            part = ds.stratified_subset(frame, share, seed=seed)
            got = part["code"].value_counts()
            assert set(got.index) == set(sizes.index), f"share {share} lost a code"
            for code, n in sizes.items():
                assert got[code] == max(1, round(n * share))
            assert part.index.is_unique and set(part.index) <= set(frame.index)
    a = ds.stratified_subset(frame, 0.5, seed=0)
    b = ds.stratified_subset(frame, 0.5, seed=1)
    assert set(a.index) != set(b.index)  # the seed changes the draw
    assert ds.stratified_subset(frame, 0.5, seed=0).index.equals(a.index)  # and fixes it
    assert ds.stratified_subset(frame, 0.0).empty
    assert ds.stratified_subset(frame, 1.0).equals(frame)
    with pytest.raises(ParameterError, match="share"):
        ds.stratified_subset(frame, 1.5)


def test_hard_codes_are_the_rarest_quartile():
    codes = ["A"] * 2 + ["B"] * 3 + ["C"] * 10 + ["D"] * 20 + ["E"] * 40
    # counts 2, 3, 10, 20, 40: the 25 % quantile is 3 → A and B
    assert ds.hard_codes(codes, 0.25) == ["A", "B"]
    assert ds.hard_codes(codes, 1.0) == ["A", "B", "C", "D", "E"]
    with pytest.raises(ParameterError):
        ds.hard_codes(codes, 0.0)


def test_setting_names_and_grid():
    assert ds.setting_name(1, 0) == "real_only" and ds.setting_name(1.0, 1.0) == "real_synthetic"
    assert ds.setting_name(0, 1) == "synthetic_only" and ds.setting_name(0.5, 0.25) == "real0.5_syn0.25"
    assert len(ds.experiment_settings(True)) == 9
    assert set(ds.experiment_settings(False)) <= set(ds.experiment_settings(True))


# ------------------------------------------------------------------------------------ leakage guard

HELD = pd.DataFrame({
    "idx": ["qdev1", "qtest1", "qtest2"],
    "text": ["Жалобы на  кашель с мокротой, насморк в течение недели.",
             "Боль в эпигастрии после еды, изжога, тошнота по утрам.",
             "Жалоб нет"],
})


def _published(rows: list[dict]) -> pd.DataFrame:
    base = {"idx": 0, "ICD-10": "J06.9", "generation_model": "GPT-4", "prompt": "p", "prior": "s+a",
            "example": True, "example_source": "RuMedPrime", "response": "Жалобы на насморк.",
            "symptoms": "насморк", "anamnesis": "Жалобы на головную боль.",
            "symptoms_recall": 0.8, "anamnesis_precision": 0.8}
    return pd.DataFrame([{**base, "idx": i, **row} for i, row in enumerate(rows)])


def test_leakage_guard_by_example_visit_id():
    held = ds.HeldOut.from_frames(HELD)
    frame = _published([{}, {}, {}, {}])
    frame["example_visit_id"] = ["qtrain9", "qdev1", None, "qtest2"]
    kept, counts = ds.prepare_synthetic(frame, categories=["J06"], held_out=held)
    assert counts["leakage_check"] == "example_visit_id and anamnesis text"
    assert counts["style_example_is_dev_test"] == 2
    assert kept["idx"].tolist() == [0, 2]
    assert counts["kept"] == 2
    # a train visit id whose text starts with a test complaint (a repeat visit) is caught by text
    frame.loc[0, "anamnesis"] = HELD.loc[1, "text"] + " Анамнез: повторный визит."
    kept, counts = ds.prepare_synthetic(frame, categories=["J06"], held_out=held)
    assert kept["idx"].tolist() == [2] and counts["style_example_is_dev_test"] == 3
    kept, counts = ds.prepare_synthetic(frame.drop(columns=["anamnesis"]), categories=["J06"], held_out=held)
    assert counts["leakage_check"] == "example_visit_id" and kept["idx"].tolist() == [0, 2]


def test_leakage_guard_by_anamnesis_text_with_published_columns_only():
    held = ds.HeldOut.from_frames(HELD)
    frame = _published([
        {"anamnesis": "жалобы на кашель с мокротой,   насморк в течение недели."},  # = dev text (case, spaces)
        {"anamnesis": "Боль в эпигастрии после еды, изжога, тошнота по утрам. Анамнез: болеет год."},  # starts with test text
        {"anamnesis": "Жалоб нет. Анамнез: плановый осмотр."},  # a 2-word held-out text is too generic to match
        {"anamnesis": "private_data"},
        {"anamnesis": None, "example": False},
        {"response": "Боль в эпигастрии после еды, изжога, тошнота по утрам."},  # the note copies a test text
    ])
    kept, counts = ds.prepare_synthetic(frame, categories=["J06"], held_out=held)
    assert counts["leakage_check"] == "anamnesis text"
    assert counts["style_example_is_dev_test"] == 2
    assert counts["text_equals_dev_test"] == 1
    assert kept["idx"].tolist() == [2, 3, 4]


def test_prepare_synthetic_maps_codes_and_counts_what_it_leaves_out():
    held = ds.HeldOut.from_frames(HELD)
    frame = _published([
        {"ICD-10": "J06.9"}, {"ICD-10": "М54.5"}, {"ICD-10": "Z99.9"}, {"ICD-10": "U07.1"},
        {"ICD-10": "Z99.9"}, {"ICD-10": "nonsense"}, {"response": ""}, {"response": None},
    ])
    kept, counts = ds.prepare_synthetic(frame, categories=["J06", "M54"], held_out=held)
    assert kept["code"].tolist() == ["J06", "M54"]
    assert counts["empty_response"] == 2 and counts["outside_task_codes"] == 4
    assert counts["outside_task_code_examples"] == {"Z99.9": 2, "U07.1": 1, "nonsense": 1}
    assert counts["kept_codes"] == 2
    assert set(kept.columns) >= {"text", "code", "generation_model", "prior"}


def test_prepare_synthetic_filter():
    held = ds.HeldOut.from_frames(HELD)
    frame = _published([{"symptoms_recall": 0.9, "anamnesis_precision": 0.9},
                        {"symptoms_recall": 0.5, "anamnesis_precision": 0.9},
                        {"symptoms_recall": 0.9, "anamnesis_precision": 0.7},  # not > 0.7
                        {"symptoms_recall": 0.9, "anamnesis_precision": float("nan")}])
    kept, counts = ds.prepare_synthetic(frame, categories=["J06"], held_out=held, use_filter=True)
    assert kept["idx"].tolist() == [0, 3] and counts["failed_filter"] == 2
    frame["passed_filter"] = [False, True, True, False]
    kept, counts = ds.prepare_synthetic(frame, categories=["J06"], held_out=held, use_filter=True)
    assert kept["idx"].tolist() == [1, 2] and counts["filter"] == "column passed_filter"
    kept, counts = ds.prepare_synthetic(frame, categories=["J06"], held_out=held, use_filter=False)
    assert len(kept) == 4 and counts["failed_filter"] == 0
    with pytest.raises(InputTableError, match="use_filter"):
        ds.prepare_synthetic(frame.drop(columns=["passed_filter", "symptoms_recall", "anamnesis_precision"]),
                             categories=["J06"], held_out=held, use_filter=True)


def test_prepare_synthetic_names_missing_columns():
    held = ds.HeldOut.from_frames(HELD)
    with pytest.raises(InputTableError, match="response"):
        ds.prepare_synthetic(pd.DataFrame({"ICD-10": ["J06"]}), categories=["J06"], held_out=held)
    with pytest.raises(InputTableError, match="code column"):
        ds.prepare_synthetic(pd.DataFrame({"response": ["x"]}), categories=["J06"], held_out=held)


# ------------------------------------------------------------------------------------ classifiers

def test_tfidf_logreg_interface():
    train = _toy(8, seed=0)
    model = ds.TfidfLogReg(max_features=500).fit(train["text"], train["code"])
    proba = model.predict_proba(["жалобы на изжога тошнота", "жалобы на жажда сахар"])
    assert proba.shape == (2, len(TOY_WORDS)) and np.allclose(proba.sum(axis=1), 1)
    assert [row[0] for row in model.top_k(["жалобы на изжога тошнота", "жалобы на жажда сахар"], k=3)] == ["K29", "E11"]
    assert model.deterministic and model.describe()["name"] == "tfidf-logreg"
    with pytest.raises(ParameterError, match="at least 2"):
        ds.TfidfLogReg().fit(["a", "b"], ["J06", "J06"])


def test_make_classifier_checks_kind_and_options():
    assert isinstance(ds.make_classifier("tfidf-logreg", max_iter=5), ds.TfidfLogReg)
    assert isinstance(ds.make_classifier("transformer", encoder="x"), ds.TransformerClassifier)
    with pytest.raises(ParameterError, match="unknown"):
        ds.make_classifier("svm")
    with pytest.raises(ParameterError, match="epochs"):
        ds.make_classifier("tfidf-logreg", epochs=3)
    with pytest.raises(ParameterError, match="unknown"):
        ds.classifier_factory("svm")


def test_transformer_classifier_same_interface_on_a_tiny_encoder(tiny_encoder_dir):
    train = _toy(4, seed=0)
    model = ds.TransformerClassifier(str(tiny_encoder_dir), max_steps=2, batch_size=8, max_length=32, seed=0)
    assert model.fit(train["text"], train["code"]) is model
    proba = model.predict_proba(["жалобы на изжога", "жалобы на насморк", "давление"])
    assert proba.shape == (3, len(TOY_WORDS)) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    top = model.top_k(["жалобы на изжога"], k=3)
    assert len(top[0]) == 3 and set(top[0]) <= set(TOY_WORDS)
    assert model.describe()["device"] in ("cpu", "cuda")
    # it plugs into the experiment like the baseline
    result = ds.run_settings(train, _toy(2, 1), _toy(2, 2), _toy(2, 3), settings=[(1.0, 0.0)], seeds=1,
                             make_model=ds.classifier_factory("transformer", encoder=str(tiny_encoder_dir),
                                                              max_steps=1, batch_size=8, max_length=32),
                             progress=False)
    assert len(result.runs) == 2


def test_transformer_classifier_names_an_encoder_it_cannot_load(tmp_path):
    from medsyn_utils.core.errors import ModelError

    with pytest.raises(ModelError, match="cannot be loaded"):
        ds.TransformerClassifier(str(tmp_path / "missing")).fit(["a", "b"], ["A", "B"])


# ------------------------------------------------------------------------------------ experiment

def test_grid_experiment_metrics_and_outputs(tmp_path):
    real, dev, test = _toy(12, 0), _toy(4, 1), _toy(5, 2)
    synthetic = _toy(6, 3, noise="пациент отмечает")
    result = ds.run_settings(real, dev, test, synthetic, settings=ds.experiment_settings(True), seeds=2,
                             make_model=_fast, progress=False)
    assert len(result.runs) == 9 * 2 * 2
    summary = result.summary()
    assert set(summary["setting"]) >= {"real_only", "real_synthetic", "synthetic_only", "real0.5_syn0.5"}
    # the baseline is deterministic: where the training set does not depend on the seed, sd is 0
    core = summary[summary["setting"].isin(["real_only", "real_synthetic"])]
    assert (core["acc@1 sd"] == 0).all()
    sizes = result.runs.drop_duplicates(["setting", "seed"]).set_index(["setting", "seed"])
    assert sizes.loc[("real0.5_syn0.5", 0), "n_train_real"] == 36  # half of 12 per code × 6 codes
    assert sizes.loc[("real0.5_syn0.5", 0), "n_train_synthetic"] == 18  # half of 6 per code × 6 codes
    assert sizes.loc[("real_only", 0), "n_train_synthetic"] == 0
    assert result.correctness["real_only"][1].shape == (2, len(test))

    hard = ds.hard_codes(real["code"])
    per_code = ds.per_code_change(result, hard=hard, n_bootstrap=200)
    assert set(per_code["code"]) == set(TOY_WORDS)
    assert ((per_code["ci_low"] <= per_code["change"] + 1e-12)
            & (per_code["change"] <= per_code["ci_high"] + 1e-12)).all()
    metrics = ds.build_metrics(result, {"kept": len(synthetic)}, hard=hard, n_bootstrap=200, per_code=per_code)
    json.dumps(metrics)  # serialisable
    assert {"all_codes", "hard_codes"} <= set(metrics["comparison"])
    assert metrics["summary"]["real_only_test_acc@1"] == pytest.approx(
        result.runs.query("setting == 'real_only' and split == 'test'")["acc@1"].mean())
    numbers = ds.stage_metrics(metrics)
    assert {"real_only_test_acc@1", "real_only_test_acc@3", "real_synthetic_test_acc@1",
            "real_synthetic_test_acc@3"} <= set(numbers)
    written = ds.write_outputs(metrics, result, tmp_path, per_code)
    assert json.loads((tmp_path / ds.METRICS_FILE).read_text(encoding="utf-8"))["hard_codes"] == hard
    for name in ("accuracy_per_setting", "per_code_change"):
        assert (tmp_path / "figures" / "downstream" / f"{name}.png").is_file()
        assert (tmp_path / "figures" / "downstream" / f"{name}.pdf").is_file()
    assert "index" in written


def test_group_change_on_known_correctness():
    result = ds.ExperimentResult(
        runs=pd.DataFrame(), test_codes=np.array(["A", "A", "B", "B"]), train_codes=np.array(["A", "B"]),
        classifier={}, correctness={
            "real_only": {1: np.array([[1, 0, 0, 0], [1, 0, 0, 0]], dtype=bool)},
            "real_synthetic": {1: np.array([[1, 1, 0, 1], [1, 1, 0, 0]], dtype=bool)}})
    out = ds.group_change(result, ["B"], ks=(1,), n_bootstrap=100)
    assert out["n_test"] == 2 and out["acc@1"]["real_only"] == 0.0
    assert out["acc@1"]["real_synthetic"] == 0.25 and out["acc@1"]["change"] == 0.25
    assert math.isnan(out["acc@1"]["relative_change_pct"])
    everything = ds.group_change(result, None, ks=(1,), n_bootstrap=100)
    assert everything["acc@1"]["change"] == pytest.approx(0.625 - 0.25)


def test_a_setting_without_training_codes_is_skipped_not_fatal():
    real, dev, test = _toy(6, 0), _toy(2, 1), _toy(2, 2)
    synthetic = _toy(3, 3).query("code == 'J06'")  # one code only
    result = ds.run_settings(real, dev, test, synthetic, settings=ds.experiment_settings(False), seeds=1,
                             make_model=_fast, progress=False)
    assert "synthetic_only" in result.skipped and "real_synthetic" in result.correctness


# ------------------------------------------------------------------------------------ real data

@pytest.mark.integration
def test_cli_on_the_demo_dataset(tmp_path, data_dir, capsys):
    from medsyn_utils.cli import app as cli
    from medsyn_utils.testing.demo import schema_shaped_dataset

    path = tmp_path / "synthetic.csv"
    frame = schema_shaped_dataset(120, seed=1, extra_columns=True)
    frame.to_csv(path, index=False)
    code = cli.main(["downstream", "--synthetic", str(path), "--out", str(tmp_path / "out"), "--seeds", "1",
                     "--no-char-ngrams", "--max-features", "3000", "--bootstrap", "50"])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / ds.METRICS_FILE).read_text(encoding="utf-8"))
    counts = metrics["synthetic"]
    assert counts["leakage_check"] == "example_visit_id and anamnesis text"
    assert counts["kept"] + counts["outside_task_codes"] + counts["style_example_is_dev_test"] \
        + counts["text_equals_dev_test"] == 120
    assert 0.2 < metrics["summary"]["real_only_test_acc@1"] < 0.7
    assert "real_only" in capsys.readouterr().out
