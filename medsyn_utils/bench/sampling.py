"""``medsyn bench sampling``: the vectorised task sampler against a one-task-at-a-time loop.

Both draw the same thing from the same knowledge graph in the same process: a patient (location,
sex, age), a target category by visit frequency, a leader sub-code of it, and k symptoms by
``softmax(w / T)`` without replacement. The loop has the shape of the original MedSyn sampler:
per task, ``numpy`` choices on pandas columns for the patient, a pandas query for the code's rows,
parsing the stored symptom and weight lists, a softmax and ``choice(replace=False)``.
"""

from __future__ import annotations

from typing import Any

import json
import time

import numpy as np
import pandas as pd

from medsyn_utils.core.checks import SEED_MAX
from medsyn_utils.tasks import patients as patient_sampling
from medsyn_utils.tasks import symptoms as symptom_priors
from medsyn_utils.tasks import targets as target_sampling
# Options of `medsyn bench sampling` (flags, argparse keywords); cli/bench.py adds them.
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--n-vectorized",), dict(type=int, default=20000, help="tasks drawn by the vectorised sampler")),
    (("--n-loop",), dict(type=int, default=1000, help="tasks drawn by the loop")),
    (("--seed",), dict(type=int, default=0, help="random seed")),
    (("--temperature",), dict(type=float, default=10.0, help="T of softmax(w / T)")),
)

# Allowed values of the numeric options (keywords of core.checks.check_number), checked by
# `medsyn bench` before anything loads.
RANGES: dict[str, dict[str, Any]] = {
    "n_vectorized": dict(low=1, high=10_000_000, integer=True),
    "n_loop": dict(low=1, high=1_000_000, integer=True),
    "seed": dict(low=0, high=SEED_MAX, integer=True),
    "temperature": dict(low=0, low_open=True, high=1e6),
}


def _loop_tables(prior: symptom_priors.PriorTable, population: patient_sampling.Population,
                 frequencies: np.ndarray, sexes: np.ndarray
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The same priors laid out as the original sampler kept them: string lists in a table."""
    rows = []
    for unit in range(len(prior.unit_code)):
        n = int(prior.n_eligible[unit])
        names = [str(prior.vocab[i]) for i in prior.ids[unit, :n]]
        weights = prior.weights[unit, :n] if prior.use_weights[unit] else np.full(n, np.nan)
        rows.append({"target": prior.targets[prior.unit_target[unit]],
                     "icd_10": prior.unit_code[unit], "gender": prior.unit_sex[unit],
                     "symptoms_ru": json.dumps(names, ensure_ascii=False),
                     "tfidf": json.dumps([None if np.isnan(w) else float(w) for w in weights])})
    diseases = pd.DataFrame(rows)
    codes = pd.DataFrame({"code": list(prior.targets), "probs": frequencies / frequencies.sum(),
                          "gender": sexes})
    cells = population.cell_table()
    return diseases, codes, cells


def _loop(n: int, rng: np.random.Generator, diseases: pd.DataFrame, codes: pd.DataFrame,
          cells: pd.DataFrame, k_min: int, k_max: int, temperature: float) -> list[dict]:
    """One task at a time, as the original sampler did (its marginals precomputed once)."""
    out = []
    totals = cells.groupby(["location", "sex"])["share"].sum()
    locations = totals.groupby(level=0).sum()
    sex_given_location = {loc: totals[loc] / totals[loc].sum() for loc in locations.index}
    age_given = {key: (part["age"], part["share"] / part["share"].sum())
                 for key, part in cells.groupby(["location", "sex"])}
    # per sex: the general codes and that sex's codes, renormalised (as the original prepared
    # its per-gender code lists once)
    pools = {}
    for sex in patient_sampling.SEXES:
        own = codes[(codes["gender"] == "") | (codes["gender"] == sex)]
        pools[sex] = (own["code"], own["probs"] / own["probs"].sum())
    for _ in range(n):
        location = rng.choice(locations.index.to_numpy(),
                              p=(locations / locations.sum()).to_numpy())
        by_sex = sex_given_location[location]
        sex = rng.choice(by_sex.index.to_numpy(), p=by_sex.to_numpy())
        ages, p_age = age_given[(location, sex)]
        age = rng.choice(ages.to_numpy(), p=p_age.to_numpy())
        pool, p_code = pools[sex]
        code = rng.choice(pool.to_numpy(), p=p_code.to_numpy())
        data = diseases.query("target == @code and (gender == '' or gender == @sex)")
        row = data.iloc[int(rng.integers(len(data)))]
        names = json.loads(row["symptoms_ru"])
        weights = np.array([np.nan if w is None else w for w in json.loads(row["tfidf"])])
        if np.isnan(weights).any():
            p = np.full(len(names), 1 / len(names))
        else:
            # floor at the smallest float: underflowed symptoms stay drawable, drawn last
            e = np.maximum(np.exp((weights - weights.max()) / temperature), np.finfo(float).tiny)
            p = e / e.sum()
        k = min(len(names), int(rng.integers(k_min, k_max + 1)))
        symptoms = rng.choice(names, size=k, replace=False, p=p)
        out.append({"location": location, "sex": sex, "age": int(age), "icd10": row["icd_10"],
                    "symptoms": list(symptoms)})
    return out


def _vectorised(n: int, rng: np.random.Generator, prior: symptom_priors.PriorTable,
                population: patient_sampling.Population, frequencies: np.ndarray, sexes: np.ndarray,
                k_min: int, k_max: int, temperature: float) -> pd.DataFrame:
    patients = patient_sampling.sample_patients(rng, n, population)
    target = target_sampling.sample_codes_by_frequency(rng, patients["sex"].to_numpy(object),
                                                frequencies, sexes, None)
    units = prior.choose_units(target, rng, k_min, patients["sex"].to_numpy(object))
    slots, _ = prior.sample_symptoms(units, rng, k_min, k_max, temperature)
    patients["icd10"] = prior.unit_code[units]
    patients["symptoms"] = prior.symptom_lists(units, slots, rng, pick_synonym=False)
    return patients


def run(args: Any) -> dict:
    """Tasks per second of both samplers on the same graph, and their ratio."""
    from medsyn_utils.kg.graph import load_graph

    kg = load_graph()
    targets = target_sampling.universe(kg, "rumedtop3")
    prior = symptom_priors.build_prior_table(kg, targets)
    population = patient_sampling.load_population(9)
    frequencies = target_sampling.code_frequencies(kg, targets)
    # Both samplers draw a code by frequency among the general codes and the patient's sex's.
    sexes = target_sampling.code_sexes(kg, targets)
    diseases, codes, cells = _loop_tables(prior, population, frequencies, sexes)
    k_min, k_max, temperature = 2, 5, float(args.temperature)

    rng = np.random.default_rng(args.seed)
    _vectorised(1000, rng, prior, population, frequencies, sexes, k_min, k_max, temperature)
    start = time.perf_counter()
    vec = _vectorised(args.n_vectorized, rng, prior, population, frequencies, sexes, k_min,
                      k_max, temperature)
    vec_seconds = time.perf_counter() - start

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    loop = _loop(args.n_loop, rng, diseases, codes, cells, k_min, k_max, temperature)
    loop_seconds = time.perf_counter() - start

    vectorized_per_s = len(vec) / vec_seconds
    per_task_loop_per_s = len(loop) / loop_seconds
    return {
        "vectorized_per_s": round(vectorized_per_s, 1),
        "per_task_loop_per_s": round(per_task_loop_per_s, 1),
        "ratio": round(vectorized_per_s / per_task_loop_per_s, 1),
        "n_vectorized": len(vec),
        "n_loop": len(loop),
    }
