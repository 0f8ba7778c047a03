"""Patients of the tasks: location, sex, age, marital status and smoking.

:class:`Population` holds the 2022 Russian age–sex–urban pyramid and marriages by age group;
:func:`sample_patients` draws (location, sex, age ≥ ``min_age``) jointly from it, marriage by the
share of marriages up to the patient's age group, smoking by the method's rates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import DataError, ParameterError

AGE_TABLE = "medsyn/demographical/EdgeGenderRU_2022.csv"
MARRIAGE_TABLE = "medsyn/demographical/FamilyStatusRU.csv"
DEMOGRAPHIC_FILES: tuple[str, ...] = (AGE_TABLE, MARRIAGE_TABLE)
LOCATIONS: tuple[str, ...] = ("city", "countryside")
SEXES: tuple[str, ...] = ("male", "female")
MARRIAGE_GROUPS: tuple[tuple[int, int], ...] = ((0, 17), (18, 24), (25, 34), (35, 200))


@dataclass(frozen=True)
class Population:
    """Joint (location, sex, age) counts for ages ≥ ``min_age`` and marriage by age group."""

    ages: np.ndarray                 # (A,) ages from min_age
    counts: np.ndarray               # (2 locations, 2 sexes, A)
    married_cdf: np.ndarray          # (2 sexes, 4 groups): share of marriages up to each group
    min_age: int

    def cell_table(self) -> pd.DataFrame:
        """Long table ``location, sex, age, share`` (share of the population ≥ ``min_age``)."""
        loc, sex, age = np.meshgrid(np.arange(2), np.arange(2), np.arange(len(self.ages)),
                                    indexing="ij")
        share = self.counts / self.counts.sum()
        return pd.DataFrame({
            "location": np.array(LOCATIONS)[loc.ravel()], "sex": np.array(SEXES)[sex.ravel()],
            "age": self.ages[age.ravel()], "share": share.ravel(),
        })


def load_population(min_age: int = 9, marriage_years: int = 10) -> Population:
    """The 2022 pyramid from ``min_age`` and the marriage age groups of the last years.

    ``married_cdf[sex, g]`` is the share of marriages (over the last ``marriage_years`` years of
    the table) at an age up to group ``g`` (0-17, 18-24, 25-34, 35+): the method's stand-in for how
    likely a person of that age is to be married.
    """
    from medsyn_utils.core.data import fetch

    if not isinstance(min_age, (int, np.integer)) or not 0 <= min_age <= 99:
        raise ParameterError(f"min_age={min_age!r} must be an integer in 0..99 (the method uses 9)")
    try:
        pyramid = pd.read_csv(fetch(AGE_TABLE))
        marriages = pd.read_csv(fetch(MARRIAGE_TABLE), dtype={"year": str})
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the demographic tables: {error}") from error
    pyramid = pyramid[pyramid["Age"] >= min_age].sort_values("Age")
    counts = np.stack([
        np.stack([pyramid[f"{s}_{loc}"].to_numpy(float) for s in ("M", "F")])
        for loc in ("City", "Countryside")
    ])
    marriages["year"] = marriages["year"].map(lambda v: int(re.match(r"\d+", v).group()))
    recent = marriages.sort_values("year").tail(marriage_years)
    cdf = []
    for prefix in ("m", "f"):
        groups = [f"{prefix}_age_0-17", f"{prefix}_age_18-24", f"{prefix}_age_25-34",
                  f"{prefix}_age_35-99"]
        totals = recent[groups].sum().to_numpy(float)
        cdf.append(np.cumsum(totals) / totals.sum())
    return Population(ages=pyramid["Age"].to_numpy(int), counts=counts, married_cdf=np.array(cdf),
                      min_age=int(min_age))


def sample_patients(rng: np.random.Generator, n: int, population: Population,
                    sex: Sequence[str] | np.ndarray | None = None, *,
                    smoking_male: float = 0.346, smoking_female: float = 0.083,
                    smoking_min_age: int = 16, married_ceiling: float = 0.65) -> pd.DataFrame:
    """Draw ``n`` patients: location, sex, age, marital status, smoking.

    (location, sex, age) come from the pyramid jointly; where ``sex[i]`` is ``"male"`` or
    ``"female"`` (a sex-specific code) the draw is from that sex's part of the pyramid. Married
    with probability ``married_ceiling · married_cdf[sex, age group]``; smokers with the method's
    rates (34.6 % of men, 8.3 % of women), never under ``smoking_min_age``.
    """
    for name, value in (("smoking_male", smoking_male), ("smoking_female", smoking_female),
                        ("married_ceiling", married_ceiling)):
        if not 0 <= value <= 1:
            raise ParameterError(f"{name}={value} must be a probability in [0, 1]")
    forced = np.full(n, "", dtype=object) if sex is None else np.asarray(sex, dtype=object)
    if len(forced) != n:
        raise ParameterError(f"sex has {len(forced)} entries for n={n} patients")
    n_age = len(population.ages)
    location = np.empty(n, dtype=np.int64)
    sex_idx = np.empty(n, dtype=np.int64)
    age_idx = np.empty(n, dtype=np.int64)
    for label, rows in (("", forced == ""), ("male", forced == "male"),
                        ("female", forced == "female")):
        rows = np.flatnonzero(rows)
        if not len(rows):
            continue
        counts = population.counts.copy()
        if label:
            counts[:, 1 - SEXES.index(label), :] = 0
        cdf = np.cumsum(counts.ravel())
        cell = np.searchsorted(cdf, rng.random(len(rows)) * cdf[-1], side="right")
        cell = np.minimum(cell, cdf.size - 1)
        location[rows], rest = np.divmod(cell, 2 * n_age)
        sex_idx[rows], age_idx[rows] = np.divmod(rest, n_age)
    unknown = set(forced.tolist()) - {"", "male", "female"}
    if unknown:
        raise ParameterError(f"unknown sex {sorted(unknown)[0]!r}: use 'male' or 'female'")
    age = population.ages[age_idx]
    group = np.searchsorted([g[1] for g in MARRIAGE_GROUPS], age, side="left")
    p_married = married_ceiling * population.married_cdf[sex_idx, group]
    married = rng.random(n) < p_married
    p_smoke = np.where(sex_idx == 0, smoking_male, smoking_female)
    smoking = (rng.random(n) < p_smoke) & (age >= smoking_min_age)
    return pd.DataFrame({
        "sex": np.array(SEXES, dtype=object)[sex_idx],
        "age": age.astype(int),
        "location": np.array(LOCATIONS, dtype=object)[location],
        "marital_status": np.where(married, "married", "single").astype(object),
        "smoking": smoking.astype(bool),
    })
