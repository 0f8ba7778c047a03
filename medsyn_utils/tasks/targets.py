"""Target codes of the tasks: which ICD-10 codes are drawn, and how many tasks each gets.

By visit frequency (sex-specific codes only for patients of that sex, MedSyn's 15 % share), or
by the MedSyn allocation ``f(real notes) · f(mean symptoms)``; counts are split exactly by the
largest remainder (:func:`allocate`), so the shares are as exact as ``n`` allows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.tasks.patients import SEXES


def loglog1p(x: np.ndarray | float) -> np.ndarray:
    """``f(x) = log1p(log1p(log1p(x)))``: the method's damping of per-category counts."""
    return np.log1p(np.log1p(np.log1p(np.asarray(x, dtype=float))))


def allocate(weights: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` into integer counts proportional to ``weights`` (largest remainder, exact sum).

    Ties in the remainders go to the earlier entry, so the result is deterministic.
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or len(w) == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ParameterError("allocation weights must be finite, non-negative and not all zero: "
                             "check the code list or the allocation inputs")
    share = w / w.sum() * n
    counts = np.floor(share).astype(int)
    rest = n - int(counts.sum())
    if rest > 0:
        order = np.lexsort((np.arange(len(w)), -(share - counts)))
        counts[order[:rest]] += 1
    return counts



def universe(kg, name: str = "rumedtop3") -> list[str]:
    """Categories to draw from by frequency: ``"rumedtop3"`` (the 105 of the downstream task) or
    ``"all"`` (every category with a visit share in the MedSyn frequencies)."""
    if name == "rumedtop3":
        return list(kg.rumedtop3_categories)
    if name == "all":
        return sorted(c for c in kg.visit_share().index if c in kg.codes)
    raise ParameterError(f"code_universe={name!r} is unknown: use 'rumedtop3' or 'all'")


def code_frequencies(kg, codes: Sequence[str]) -> np.ndarray:
    """Visit share of each code's category; a category without one gets the smallest share seen.

    Returned unnormalised (shares of all outpatient visits), so a notebook can compare them.
    """
    share = kg.visit_share()
    values = np.array([share.get(c[:3], np.nan) for c in codes], dtype=float)
    floor = np.nanmin(values) if np.any(~np.isnan(values)) else 1.0
    return np.where(np.isnan(values), floor, values)


def code_sexes(kg, codes: Sequence[str]) -> np.ndarray:
    """``"male"``/``"female"`` for sex-specific codes (WHO list), ``""`` for the others."""
    return np.array([kg.sex(c) or "" for c in codes], dtype=object)


def sample_codes_by_frequency(rng: np.random.Generator, patient_sex: np.ndarray,
                              frequencies: np.ndarray, sexes: np.ndarray,
                              sex_specific_share: float | None = 0.15) -> np.ndarray:
    """Index of a code for each patient, by frequency, sex-specific codes only for that sex.

    With ``sex_specific_share`` (MedSyn: 0.15) a draw is sex-specific with that probability (from
    the codes of the patient's sex, by frequency) and general otherwise; ``None`` draws from the
    general codes and the patient's sex's codes together by frequency. Where a sex has no
    specific code, the draw is general.
    """
    patient_sex = np.asarray(patient_sex, dtype=object)
    freq = np.asarray(frequencies, dtype=float)
    sexes = np.asarray(sexes, dtype=object)
    general = sexes == ""
    if not general.any():
        raise ParameterError("the code list has only sex-specific codes: add general codes or "
                             "use code_selection='list'")
    out = np.empty(len(patient_sex), dtype=np.int64)
    specific = (rng.random(len(patient_sex)) < sex_specific_share
                if sex_specific_share is not None else np.zeros(len(patient_sex), dtype=bool))

    def draw(pool: np.ndarray, rows: np.ndarray) -> None:
        if len(rows):
            cdf = np.cumsum(freq[pool])
            pick = np.searchsorted(cdf, rng.random(len(rows)) * cdf[-1], side="right")
            out[rows] = pool[np.minimum(pick, len(pool) - 1)]

    for sex in SEXES:
        own = sexes == sex
        mine = patient_sex == sex
        if sex_specific_share is None:
            draw(np.flatnonzero(general | own), np.flatnonzero(mine))
        elif own.any():
            draw(np.flatnonzero(own), np.flatnonzero(mine & specific))
            draw(np.flatnonzero(general), np.flatnonzero(mine & ~specific))
        else:
            draw(np.flatnonzero(general), np.flatnonzero(mine))
    return out


def medsyn_allocation(n: int, n_real_notes: np.ndarray, mean_symptoms: np.ndarray) -> np.ndarray:
    """Tasks per category: weight ``f(n_real_notes) · f(mean symptoms)``, f = log1p∘log1p∘log1p,
    normalised to ``n`` (largest remainder)."""
    weights = loglog1p(n_real_notes) * loglog1p(mean_symptoms)
    if not np.any(weights > 0):
        raise ParameterError("the MedSyn allocation gives every category weight 0 (no real notes "
                             "or no symptoms): use code_selection='frequency' or a code list")
    return allocate(weights, n)
