"""Samplers: softmax(w/T) symptom draws, k bounds, leaders, patients, codes, style examples."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from scipy import stats

from medsyn_utils.core import corpus

from medsyn_utils.tasks import examples as example_sampling
from medsyn_utils.tasks import patients as patient_sampling
from medsyn_utils.tasks import symptoms as symptom_priors
from medsyn_utils.tasks import targets as target_sampling
from medsyn_utils.core.errors import CodeError, ParameterError


@pytest.fixture(scope="module")
def kg(data_dir):
    from medsyn_utils.kg.graph import load_graph
    return load_graph()


@pytest.fixture(scope="module")
def prior(kg):
    return symptom_priors.build_prior_table(kg, kg.rumedtop3_categories)


def _softmax(w: np.ndarray, t: float) -> np.ndarray:
    e = np.exp((w - w.max()) / t)
    return e / e.sum()


def _chi_square_p(observed: np.ndarray, expected_p: np.ndarray) -> float:
    """p-value of a chi-square goodness of fit, pooling cells expected below 5."""
    expected = expected_p * observed.sum()
    small = expected < 5
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    return float(stats.chisquare(observed, expected).pvalue)


WEIGHTS = {"a": 30.0, "b": 25.0, "c": 20.0, "d": 12.0, "e": 5.0, "f": 0.0}


def test_first_draw_follows_softmax_of_weights_over_t():
    table = symptom_priors.prior_table_from_lists({"X00": WEIGHTS})
    rng = np.random.default_rng(1)
    n, t = 40000, 10.0
    slots, k = table.sample_symptoms(np.zeros(n, dtype=int), rng, 1, 1, t)
    assert (k == 1).all()
    names = table.vocab[table.ids[0, slots[:, 0]]]
    order = np.array(list(WEIGHTS))
    observed = np.array([(names == s).sum() for s in order])
    expected = _softmax(np.array(list(WEIGHTS.values())), t)
    assert _chi_square_p(observed, expected) > 1e-3
    # the same test rejects a wrong temperature and the uniform law: it can fail
    assert _chi_square_p(observed, _softmax(np.array(list(WEIGHTS.values())), 2 * t)) < 1e-6
    assert _chi_square_p(observed, np.full(len(order), 1 / len(order))) < 1e-6
    # the table's own probabilities are the softmax
    own = table.probabilities(0, t)[: len(order)]
    ordered = dict(zip(table.vocab[table.ids[0, : len(order)]], own))
    assert np.allclose([ordered[s] for s in order], expected)


def test_second_draw_is_without_replacement_like_numpy_choice():
    """Position 2 follows P(j) = sum_i p_i p_j / (1 - p_i), as successive weighted draws do."""
    table = symptom_priors.prior_table_from_lists({"X00": WEIGHTS})
    t = 10.0
    p = _softmax(np.array(list(WEIGHTS.values())), t)
    second = np.array([sum(p[i] * p[j] / (1 - p[i]) for i in range(len(p)) if i != j)
                       for j in range(len(p))])
    rng = np.random.default_rng(2)
    slots, _ = table.sample_symptoms(np.zeros(40000, dtype=int), rng, 2, 2, t)
    names = table.vocab[table.ids[0, slots[:, 1]]]
    observed = np.array([(names == s).sum() for s in WEIGHTS])
    assert _chi_square_p(observed, second) > 1e-3
    assert (slots[:, 0] != slots[:, 1]).all()


def test_real_graph_unit_follows_softmax(prior):
    """On a weighted unit of the real graph, with T large enough that the law is not one-hot."""
    unit = int(np.flatnonzero(prior.use_weights & (prior.n_eligible >= 8))[0])
    w = prior.weights[unit, : prior.n_eligible[unit]]
    t = float(np.ptp(w) / 4) or 1.0
    rng = np.random.default_rng(3)
    slots, _ = prior.sample_symptoms(np.full(30000, unit), rng, 1, 1, t)
    observed = np.bincount(slots[:, 0], minlength=len(w))
    assert _chi_square_p(observed, _softmax(w, t)) > 1e-3


def test_k_within_bounds_and_no_repeats(prior):
    rng = np.random.default_rng(4)
    targets = rng.integers(0, len(prior.targets), 5000)
    units = prior.choose_units(targets, rng, 2)
    slots, k = prior.sample_symptoms(units, rng, 2, 5, 10.0)
    lists = prior.symptom_lists(units, slots, rng)
    available = prior.n_eligible[units]
    assert ((k >= np.minimum(2, available)) & (k <= 5) & (k <= available)).all()
    for row, items, count in zip(slots, lists, k):
        assert len(items) == count == (row >= 0).sum()
        assert len(set(items)) == len(items)
        assert len(set(row[row >= 0])) == count
    # every drawn column is a drawable symptom of the unit
    drawn = slots >= 0
    assert prior.eligible[np.repeat(units, drawn.sum(axis=1)), slots[drawn]].all()


def test_k_is_uniform_over_its_range():
    table = symptom_priors.prior_table_from_lists({"X00": {f"s{i}": float(i) for i in range(12)}})
    _, k = table.sample_symptoms(np.zeros(20000, dtype=int), np.random.default_rng(5), 2, 5, 10.0)
    observed = np.bincount(k, minlength=6)[2:]
    assert _chi_square_p(observed, np.full(4, 0.25)) > 1e-3


def test_k_is_capped_by_availability_even_when_softmax_underflows():
    table = symptom_priors.prior_table_from_lists({"X00": {"a": 41794.0, "b": 1.0, "c": 0.5}})
    slots, k = table.sample_symptoms(np.zeros(200, dtype=int), np.random.default_rng(6), 3, 5, 10.0)
    assert (k == 3).all()
    assert all(sorted(row[:3]) == [0, 1, 2] for row in slots)


def test_mixed_weight_policies():
    units = {"X00": {"w1": 10.0, "w2": 9.0, "u1": None, "u2": None}, "Y00": {"u3": None, "u4": None}}
    only = symptom_priors.prior_table_from_lists(units, mixed="weighted_only")
    assert only.n_eligible.tolist() == [2, 2]  # unweighted left out where weights exist
    rng = np.random.default_rng(7)
    slots, _ = only.sample_symptoms(np.zeros(500, dtype=int), rng, 2, 2, 10.0)
    names = set(only.vocab[only.ids[0, slots[slots >= 0]]])
    assert names == {"w1", "w2"}
    fill = symptom_priors.prior_table_from_lists(units, mixed="fill_min")
    assert fill.n_eligible.tolist() == [4, 2]
    p = dict(zip(fill.vocab[fill.ids[0]], fill.probabilities(0, 10.0)))
    assert np.isclose(p["u1"], p["w2"]) and p["w1"] > p["w2"]
    uniform = symptom_priors.prior_table_from_lists(units, mixed="uniform")
    assert np.allclose(uniform.probabilities(0, 10.0), 0.25)
    with pytest.raises(ParameterError, match="mixed_weights"):
        symptom_priors.prior_table_from_lists(units, mixed="nope")


def test_temperature_must_be_positive():
    table = symptom_priors.prior_table_from_lists({"X00": WEIGHTS})
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ParameterError, match="temperature"):
            table.logits(bad)


def test_k_bounds_are_checked():
    table = symptom_priors.prior_table_from_lists({"X00": WEIGHTS})
    rng = np.random.default_rng(0)
    with pytest.raises(ParameterError, match="k_min=4 is larger than k_max=3"):
        table.sample_symptoms(np.zeros(3, dtype=int), rng, 4, 3, 10.0)
    with pytest.raises(ParameterError, match="k_min=0"):
        table.sample_symptoms(np.zeros(3, dtype=int), rng, 0, 3, 10.0)


def test_synonym_groups_give_one_variant():
    table = symptom_priors.prior_table_from_lists({"X00": {"головная боль, цефалгия": 1.0, "кашель": 1.0}},
                                            synonyms=True)
    rng = np.random.default_rng(8)
    slots, _ = table.sample_symptoms(np.zeros(400, dtype=int), rng, 2, 2, 10.0)
    lists = table.symptom_lists(np.zeros(400, dtype=int), slots, rng, pick_synonym=True)
    seen = {item for items in lists for item in items}
    assert seen == {"головная боль", "цефалгия", "кашель"}
    plain = table.symptom_lists(np.zeros(400, dtype=int), slots, rng, pick_synonym=False)
    assert {item for items in plain for item in items} == {"головная боль, цефалгия", "кашель"}


def test_prior_table_agrees_with_graph_symptoms(kg):
    """Roll-up units carry the same symptoms and weights as KnowledgeGraph.symptoms(rollup=True)."""
    table = symptom_priors.build_prior_table(kg, ["J06", "I10"], scope="rollup", mixed="fill_min",
                                       exclude=())
    for unit, code in enumerate(table.targets):
        reference = kg.symptoms(code, rollup=True)
        n = table.n_eligible[unit]
        names = table.vocab[table.ids[unit, :n]]
        assert set(names) == set(reference["symptom"])
        weights = dict(zip(names, table.weights[unit, :n]))
        for symptom, weight in zip(reference["symptom"], reference["weight"]):
            if not np.isnan(weight):
                assert np.isclose(weights[symptom], weight)


def test_leader_is_a_code_of_the_category(kg, prior):
    rng = np.random.default_rng(9)
    target = prior.target_index(["J06"] * 400)
    units = prior.choose_units(target, rng, 2)
    codes = set(prior.unit_code[units])
    assert len(codes) > 1
    assert codes <= {"J06", *kg.descendants("J06")}
    rollup = symptom_priors.build_prior_table(kg, ["J06"], scope="rollup")
    assert set(rollup.unit_code) == {"J06"}


def test_source_choice_and_errors(kg):
    only_wikimed = symptom_priors.build_prior_table(kg, ["J06"], sources=["wikimed"], scope="rollup")
    reference = kg.symptoms("J06", rollup=True, sources=["wikimed"])
    assert only_wikimed.n_eligible[0] == len(reference)
    assert not only_wikimed.use_weights.any()
    with pytest.raises(ParameterError, match="unknown symptom source 'nope'"):
        symptom_priors.build_prior_table(kg, ["J06"], sources=["nope"])
    with pytest.raises(ParameterError, match="symptom_scope"):
        symptom_priors.build_prior_table(kg, ["J06"], scope="nope")
    empty = symptom_priors.build_prior_table(kg, ["V01"])
    with pytest.raises(CodeError, match="V01 has no symptoms"):
        empty.choose_units(np.zeros(2, dtype=int), np.random.default_rng(0))


# --------------------------------------------------------------------------- codes


def test_allocate_is_exact_and_proportional():
    counts = target_sampling.allocate([3, 1, 0, 6], 101)
    assert counts.sum() == 101 and counts[2] == 0
    assert counts.tolist() == [30, 10, 0, 61]
    with pytest.raises(ParameterError):
        target_sampling.allocate([0, 0], 5)


def test_medsyn_allocation_uses_triple_log1p():
    counts = target_sampling.medsyn_allocation(1000, np.array([100.0, 10.0, 0.0]), np.array([5.0, 5.0, 5.0]))
    f = target_sampling.loglog1p
    expected = f(np.array([100.0, 10.0, 0.0])) * f(5.0)
    assert counts.sum() == 1000 and counts[2] == 0
    assert abs(counts[0] / counts[1] - expected[0] / expected[1]) < 0.01


def test_sex_specific_codes_only_for_that_sex():
    rng = np.random.default_rng(10)
    sexes = np.array(["", "male", "female", ""], dtype=object)
    freq = np.array([0.5, 0.2, 0.2, 0.1])
    patients = rng.choice(np.array(["male", "female"], dtype=object), 20000)
    for share in (0.15, None):
        codes = target_sampling.sample_codes_by_frequency(rng, patients, freq, sexes, share)
        assert not ((codes == 1) & (patients == "female")).any()
        assert not ((codes == 2) & (patients == "male")).any()
    codes = target_sampling.sample_codes_by_frequency(rng, patients, freq, sexes, 0.15)
    male = patients == "male"
    assert abs((codes[male] == 1).mean() - 0.15) < 0.02  # 15 % of men's draws are sex-specific


# --------------------------------------------------------------------------- patients


def test_patients_respect_min_age_smoking_and_forced_sex(data_dir):
    population = patient_sampling.load_population(min_age=9)
    rng = np.random.default_rng(11)
    forced = np.array(["male"] * 3000 + [""] * 20000, dtype=object)
    patients = patient_sampling.sample_patients(rng, len(forced), population, forced)
    assert (patients["age"] >= 9).all()
    assert (patients["sex"][:3000] == "male").all()
    assert not patients.loc[patients["age"] < 16, "smoking"].any()
    assert (patients.loc[patients["age"] < 18, "marital_status"] == "married").mean() < 0.01
    free = patients.iloc[3000:]
    cells = population.cell_table()
    share_city = cells.loc[cells["location"] == "city", "share"].sum()
    assert abs((free["location"] == "city").mean() - share_city) < 0.02
    adult_men = free[(free["sex"] == "male") & (free["age"] >= 16)]
    assert abs(adult_men["smoking"].mean() - 0.346) < 0.03
    adult_women = free[(free["sex"] == "female") & (free["age"] >= 16)]
    assert abs(adult_women["smoking"].mean() - 0.083) < 0.02


def test_population_rejects_bad_min_age(data_dir):
    with pytest.raises(ParameterError, match="min_age"):
        patient_sampling.load_population(min_age=-1)


# --------------------------------------------------------------------------- style examples


def test_examples_are_train_visits_by_default(data_dir):
    store = example_sampling.build_example_store()
    held_out = set(corpus.load_rumedtop3(("dev", "test"))["idx"])
    assert store.visit_id.size and not set(store.visit_id) & held_out
    rng = np.random.default_rng(12)
    drawn = store.sample(["J06"] * 300 + ["I11"] * 300, rng, "шаблон")
    assert not set(drawn["example_visit_id"]) & held_out
    assert all(len(t.split()) >= 30 for t in drawn["example_text"])
    assert drawn["example_visit_id"].nunique() < 600  # with replacement, from a small pool
    dev = example_sampling.build_example_store(splits=("dev",))
    assert set(dev.visit_id) <= set(corpus.load_rumedtop3("dev")["idx"])
    assert set(dev.source) <= {"RuMedPrime-note-dev", "RuMedTop3-dev"}


def test_example_falls_back_to_the_template(data_dir):
    store = example_sampling.build_example_store(min_words=10_000)
    drawn = store.sample(["J06", "I63"], np.random.default_rng(0), "Пациент обратился.")
    assert drawn["example_source"].tolist() == ["template", "template"]
    assert drawn["example_visit_id"].tolist() == [None, None]
    assert drawn["example_text"].tolist() == ["Пациент обратился."] * 2
    normal = example_sampling.build_example_store()
    mixed = normal.sample(["J06", "I63"], np.random.default_rng(0), "Пациент обратился.")
    assert mixed["example_source"].tolist()[1] == "template"  # I63 is not a RuMedTop3 category
    assert mixed["example_source"].tolist()[0] != "template"


def test_example_policy_and_splits_are_checked(data_dir):
    complaints = example_sampling.build_example_store(policy="complaints", min_words=0)
    assert set(complaints.source) == {"RuMedTop3-train"}
    with pytest.raises(ParameterError, match="unknown split 'val'"):
        example_sampling.build_example_store(splits=("val",))
    with pytest.raises(ParameterError, match="example_policy"):
        example_sampling.build_example_store(policy="nope")


# --------------------------------------------------------------------------- benchmark


def test_benchmark_reports_both_rates(data_dir):
    from medsyn_utils.bench import sampling as bench

    parser = argparse.ArgumentParser()
    for flags, options in bench.OPTIONS:
        parser.add_argument(*flags, **options)
    result = bench.run(parser.parse_args(["--n-vectorized", "300", "--n-loop", "10"]))
    assert set(result) >= {"vectorized_per_s", "per_task_loop_per_s", "ratio"}
    assert result["vectorized_per_s"] > 0 and result["per_task_loop_per_s"] > 0
    assert result["n_vectorized"] == 300 and result["n_loop"] == 10


def test_sex_specific_leader_only_for_that_sex(kg):
    """E89 is general, its sub-code E89.4 (ovarian failure) is for women only."""
    table = symptom_priors.build_prior_table(kg, ["E89"])
    assert "E89.4" in set(table.unit_code) and kg.sex("E89.4") == "female"
    rng = np.random.default_rng(13)
    men = table.choose_units(np.zeros(3000, dtype=int), rng, 2, np.full(3000, "male", dtype=object))
    assert "E89.4" not in set(table.unit_code[men])
    women = table.choose_units(np.zeros(3000, dtype=int), rng, 2,
                               np.full(3000, "female", dtype=object))
    assert "E89.4" in set(table.unit_code[women])
