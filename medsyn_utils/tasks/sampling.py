"""Vectorised priors of the method: target codes, patients, symptoms and style examples.

Everything is precomputed once into compact arrays, then thousands of tasks are drawn at once
with a ``numpy.random.Generator`` (no pandas query per task):

* :class:`PriorTable` — one row per *sampling unit* (a code whose symptoms are drawn together),
  padded symptom ids and weights; symptoms are drawn without replacement with probabilities
  ``softmax(w / T)`` by the Gumbel-top-k trick, which gives exactly the distribution of
  successive weighted draws without replacement (``numpy.random.choice(replace=False, p=...)``).
* :class:`Population` — the 2022 Russian age–sex–urban pyramid and marriages by age group, for
  location, sex, age (≥ ``min_age``), marital status and smoking.
* :class:`ExampleStore` — real notes of each three-character category (train visits by default),
  for style examples drawn with replacement, with a neutral template where a category has none.

Symptom sources and weights
---------------------------
Symptoms come from the knowledge graph (:mod:`medsyn_utils.graph`); ``sources`` chooses which of
its symptom sources are used (default: all five, :data:`DEFAULT_SOURCES`). A symptom's weight is
its TF-IDF from the MedSyn table, else from HSDN (the largest over the codes of a unit), exactly as
:meth:`KnowledgeGraph.symptoms` reports it; the other sources carry no weight. A unit whose symptoms
are partly weighted is handled by ``mixed`` (:data:`MIXED_POLICIES`):

* ``"weighted_only"`` (default, as MedSyn did: it used the weighted list of a code when it had one
  and the unweighted list otherwise): only weighted symptoms are drawn, by ``softmax(w / T)``;
  a unit without any weighted symptom draws uniformly from all of its symptoms;
* ``"fill_min"``: unweighted symptoms get the smallest weight of the unit, all are drawn;
* ``"uniform"``: weights are ignored, every symptom equally likely.

``scope`` says which symptoms a category draws from: ``"leader"`` (default, as MedSyn did) picks a
random code of the category's subtree that has symptoms of its own (a sub-code, or the category
itself where a source lists symptoms for it) and draws from that code's own symptoms; ``"rollup"``
draws from the union of the category's and all its sub-codes' symptoms. A sub-code given as a
target (``J06.9``) always draws from its own roll-up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import CodeError, DataError, ParameterError

SOURCES_ALL: tuple[str, ...] = ("medsyn_tfidf", "medsyn_list", "wikimed", "hsdn", "rumedprime_train")
DEFAULT_SOURCES: tuple[str, ...] = SOURCES_ALL
WEIGHT_ORDER: tuple[str, ...] = ("medsyn_tfidf", "hsdn")  # first that weights a symptom wins
MIXED_POLICIES: tuple[str, ...] = ("weighted_only", "fill_min", "uniform")
SCOPES: tuple[str, ...] = ("leader", "rollup")
# Placeholder "symptoms" of the MedSyn table that the authors' sampler skipped as well.
DEFAULT_EXCLUDED_SYMPTOMS: tuple[str, ...] = ("вес при рождении", "кома", "вес тела", "вес плода")

AGE_TABLE = "medsyn/demographical/EdgeGenderRU_2022.csv"
MARRIAGE_TABLE = "medsyn/demographical/FamilyStatusRU.csv"
DEMOGRAPHIC_FILES: tuple[str, ...] = (AGE_TABLE, MARRIAGE_TABLE)
LOCATIONS: tuple[str, ...] = ("city", "countryside")
SEXES: tuple[str, ...] = ("male", "female")
MARRIAGE_GROUPS: tuple[tuple[int, int], ...] = ((0, 17), (18, 24), (25, 34), (35, 200))


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


# --------------------------------------------------------------------------- symptoms


def _symptom_edges(kg, node) -> Iterable[tuple[str, str, float]]:
    """(symptom, source, weight) of a node's own symptom edges."""
    for _, target, key, data in kg.graph.out_edges(node, keys=True, data=True):
        if data.get("type") == "has_symptom":
            yield target[1], key, float(data["weight"])


@dataclass
class PriorTable:
    """Padded per-unit symptom arrays for vectorised draws (build with :func:`build_prior_table`).

    ``targets`` are the codes tasks are drawn for (categories or sub-codes); each target owns one
    or more consecutive *units* (``target_offsets``); each unit is a code with a padded row of symptom
    ids (``ids``, ``-1`` = padding) and raw weights (``weights``; NaN = unweighted). ``eligible``
    marks the symptoms that may be drawn under the ``mixed`` policy, ``use_weights`` the units
    drawn by ``softmax(w / T)`` (the others uniformly).
    """

    targets: tuple[str, ...]
    unit_code: np.ndarray
    unit_target: np.ndarray
    unit_sex: np.ndarray  # "male"/"female" for sex-specific unit codes, "" otherwise
    target_offsets: np.ndarray
    vocab: np.ndarray
    ids: np.ndarray
    weights: np.ndarray
    eligible: np.ndarray
    use_weights: np.ndarray
    variant_offsets: np.ndarray
    variant_counts: np.ndarray
    variant_flat: np.ndarray
    sources: tuple[str, ...]
    scope: str
    mixed: str
    _logits: dict = field(default_factory=dict, repr=False)

    @property
    def n_eligible(self) -> np.ndarray:
        """Number of drawable symptoms of each unit."""
        return self.eligible.sum(axis=1)

    def target_index(self, codes: Sequence[str]) -> np.ndarray:
        """Row of each target code in :attr:`targets`."""
        where = {code: i for i, code in enumerate(self.targets)}
        missing = [c for c in codes if c not in where]
        if missing:
            raise CodeError(f"code {missing[0]!r} is not a target of this prior table: build it "
                            f"with that code among the targets")
        return np.array([where[c] for c in codes], dtype=np.int64)

    def target_symptom_counts(self) -> np.ndarray:
        """Largest number of drawable symptoms over each target's units (0 = none)."""
        best = np.zeros(len(self.targets), dtype=np.int64)
        np.maximum.at(best, self.unit_target, self.n_eligible)
        return best

    def target_mean_symptoms(self) -> np.ndarray:
        """Mean number of drawable symptoms over each target's units (for the MedSyn allocation)."""
        sums = np.bincount(self.unit_target, weights=self.n_eligible, minlength=len(self.targets))
        counts = np.bincount(self.unit_target, minlength=len(self.targets))
        return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)

    def logits(self, temperature: float) -> np.ndarray:
        """``(w - max w) / T`` per unit (0 for uniform units, ``-inf`` where not drawable)."""
        if not temperature > 0 or not math.isfinite(temperature):
            raise ParameterError(f"temperature={temperature} must be a positive number "
                                 f"(the method uses T=10)")
        key = float(temperature)
        if key not in self._logits:
            w = np.where(self.eligible & self.use_weights[:, None], self.weights, -np.inf)
            top = np.max(w, axis=1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            scaled = (w - top) / key
            scaled = np.where(self.use_weights[:, None], scaled, 0.0)
            self._logits[key] = np.where(self.eligible, scaled, -np.inf)
        return self._logits[key]

    def probabilities(self, unit: int, temperature: float) -> np.ndarray:
        """Draw probabilities of one unit's padded row (the first draw's distribution)."""
        row = self.logits(temperature)[unit]
        p = np.exp(row - row.max())
        return p / p.sum()

    def choose_units(self, targets: np.ndarray, rng: np.random.Generator, k_min: int = 1,
                     patient_sex: Sequence[str] | np.ndarray | None = None) -> np.ndarray:
        """One unit per task: the target's only unit, or a random leader code of the category.

        A leader is drawn uniformly among the target's units with at least ``k_min`` drawable
        symptoms, or among those with any where none has that many. With ``patient_sex``, a
        sex-specific leader (``unit_sex``, e.g. E89.4 of the general category E89) is only
        drawn for a patient of that sex.
        """
        targets = np.asarray(targets, dtype=np.int64)
        sexes = (np.full(len(targets), "", dtype=object) if patient_sex is None
                 else np.asarray(patient_sex, dtype=object))
        u = rng.random(len(targets))
        out = np.empty(len(targets), dtype=np.int64)
        n_targets = len(self.targets)
        for sex in sorted(set(sexes.tolist())):
            rows = np.flatnonzero(sexes == sex)
            allowed = ((self.unit_sex == "") | (self.unit_sex == sex) if sex
                       else np.ones(len(self.unit_sex), dtype=bool))
            n_ok = np.where(allowed, self.n_eligible, 0)
            rich = n_ok >= max(int(k_min), 1)
            has_rich = np.bincount(self.unit_target, weights=rich, minlength=n_targets) > 0
            candidates = np.flatnonzero(np.where(has_rich[self.unit_target], rich, n_ok > 0))
            offsets = np.searchsorted(self.unit_target[candidates], np.arange(n_targets + 1))
            n_cand = np.diff(offsets)[targets[rows]]
            if np.any(n_cand == 0):
                bad = self.targets[int(targets[rows][np.argmax(n_cand == 0)])]
                whom = f" for a {sex} patient" if sex else ""
                raise CodeError(f"code {bad} has no symptoms{whom} under the chosen sources: "
                                f"choose other symptom_sources or symptom_scope, or "
                                f"on_missing_symptoms='fallback'")
            pick = offsets[targets[rows]] + np.floor(u[rows] * n_cand).astype(np.int64)
            out[rows] = candidates[pick]
        return out

    def sample_symptoms(self, units: np.ndarray, rng: np.random.Generator, k_min: int,
                        k_max: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
        """Draw symptoms for each task's unit: ``k ~ U{k_min..k_max}`` capped by availability.

        Returns ``(slots, k)``: ``slots[i, :k[i]]`` are column indices into the unit's row in draw
        order (no repeats), the rest ``-1``. Weighted units follow ``softmax(w / T)``: the first
        draw has exactly those probabilities, later ones renormalise over what is left.
        """
        _check_k(k_min, k_max)
        units = np.asarray(units, dtype=np.int64)
        m = len(units)
        all_logits = self.logits(temperature)
        k = rng.integers(k_min, k_max + 1, size=m)
        k = np.minimum(k, self.n_eligible[units])
        slots = np.full((m, k_max), -1, dtype=np.int64)
        # Drawable symptoms sit at the left of each row, so a unit needs only n_eligible columns:
        # rows are processed in buckets of power-of-two width instead of the full padded width.
        need = np.maximum(self.n_eligible[units], 1)
        width_of = np.minimum(2 ** np.ceil(np.log2(need)).astype(np.int64), all_logits.shape[1])
        for width in np.unique(width_of):
            rows = np.flatnonzero(width_of == width)
            keys = all_logits[units[rows], :width] + rng.gumbel(size=(len(rows), width))
            take = min(k_max, width)
            if take < width:
                top = np.argpartition(-keys, take - 1, axis=1)[:, :take]
            else:
                top = np.broadcast_to(np.arange(width), (len(rows), width))
            order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
            slots[rows, :take] = np.take_along_axis(top, order, axis=1)
        slots[np.arange(k_max)[None, :] >= k[:, None]] = -1
        return slots, k

    def symptom_lists(self, units: np.ndarray, slots: np.ndarray, rng: np.random.Generator,
                      pick_synonym: bool = True) -> list[list[str]]:
        """Strings of drawn symptoms; with ``pick_synonym`` one variant of a synonym group.

        MedSyn's translated terms list synonyms in one string (``"головная боль, цефалгия"``):
        one of them is chosen uniformly. Should two symptoms of a task yield the same variant,
        the second keeps its full name, so a task never repeats a symptom.
        """
        units = np.asarray(units, dtype=np.int64)
        ids = np.where(slots >= 0, np.take_along_axis(self.ids[units], np.maximum(slots, 0), axis=1), -1)
        safe = np.maximum(ids, 0)
        if pick_synonym:
            counts = self.variant_counts[safe]
            choice = np.floor(rng.random(ids.shape) * counts).astype(np.int64)
            texts = self.variant_flat[self.variant_offsets[safe] + choice]
        else:
            texts = self.vocab[safe]
        full = self.vocab[safe]
        n_drawn = (ids >= 0).sum(axis=1).tolist()
        out: list[list[str]] = []
        for count, row_text, row_full in zip(n_drawn, texts.tolist(), full.tolist()):
            items = row_text[:count]
            while len(set(items)) < count:  # rare: two symptoms gave one variant
                seen = {text for text in items if items.count(text) > 1}
                items = [row_full[j] if text in seen else text for j, text in enumerate(items)]
            out.append(items)
        return out


def _check_k(k_min: int, k_max: int) -> None:
    if not isinstance(k_min, (int, np.integer)) or not isinstance(k_max, (int, np.integer)):
        raise ParameterError(f"k_min={k_min!r} and k_max={k_max!r} must be integers")
    if k_min < 1:
        raise ParameterError(f"k_min={k_min} must be at least 1 (the method uses 2..5)")
    if k_min > k_max:
        raise ParameterError(f"k_min={k_min} is larger than k_max={k_max}: use k_min <= k_max")


def _synonym_variants(name: str) -> tuple[str, ...]:
    parts = [p.strip() for p in name.split(",")]
    parts = [p for p in dict.fromkeys(parts) if len(p) >= 2]
    return tuple(parts) or (name,)


_PRIOR_CACHE: dict[tuple, PriorTable] = {}


def _assemble(targets: tuple[str, ...], unit_code: list[str], unit_target: list[int],
              unit_sex: list[str], rows: list[dict[str, float]], synonym_names: set[str],
              mixed: str, sources: tuple[str, ...], scope: str) -> PriorTable:
    """Padded arrays from one ``{symptom: weight (NaN = unweighted)}`` mapping per unit."""
    vocab_index: dict[str, int] = {}
    width = max([len(r) for r in rows] + [1])
    n_units = len(rows)
    ids = np.full((n_units, width), -1, dtype=np.int64)
    weights = np.full((n_units, width), np.nan)
    for u, row in enumerate(rows):
        for j, (symptom, weight) in enumerate(row.items()):
            ids[u, j] = vocab_index.setdefault(symptom, len(vocab_index))
            weights[u, j] = weight
    present = ids >= 0
    weighted = present & ~np.isnan(weights)
    any_weighted = weighted.any(axis=1)
    if mixed == "weighted_only":
        eligible = np.where(any_weighted[:, None], weighted, present)
        use_weights = any_weighted
    elif mixed == "fill_min":
        low = np.where(weighted, weights, np.inf).min(axis=1)
        fill = np.where(np.isfinite(low), low, 0.0)
        weights = np.where(present & ~weighted, fill[:, None], weights)
        eligible, use_weights = present, any_weighted
    else:
        eligible, use_weights = present, np.zeros(n_units, dtype=bool)

    # Drawable symptoms first in each row (stable), so draws can look at the left columns only.
    order = np.argsort(~eligible, axis=1, kind="stable")
    ids, weights, eligible = (np.take_along_axis(a, order, axis=1) for a in (ids, weights, eligible))
    vocab = np.array(list(vocab_index) or [""], dtype=object)
    variants = [(_synonym_variants(s) if s in synonym_names else (s,)) for s in vocab]
    counts = np.array([len(v) for v in variants], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    flat = np.array([v for group in variants for v in group], dtype=object)
    unit_target_arr = np.array(unit_target, dtype=np.int64)
    return PriorTable(
        targets=tuple(targets), unit_code=np.array(unit_code, dtype=object),
        unit_target=unit_target_arr, unit_sex=np.array(unit_sex, dtype=object),
        target_offsets=np.searchsorted(unit_target_arr, np.arange(len(targets) + 1)).astype(np.int64),
        vocab=vocab, ids=ids, weights=weights, eligible=eligible, use_weights=use_weights,
        variant_offsets=offsets, variant_counts=counts, variant_flat=flat, sources=sources,
        scope=scope, mixed=mixed,
    )


def prior_table_from_lists(units: Mapping[str, Mapping[str, float | None]],
                           mixed: str = "weighted_only",
                           synonyms: bool = False) -> PriorTable:
    """A prior table from plain lists, one unit per code: ``{code: {symptom: weight or None}}``.

    For tests and for symptom priors that do not come from the graph; ``synonyms=True`` treats
    comma-separated names as synonym groups.
    """
    if mixed not in MIXED_POLICIES:
        raise ParameterError(f"mixed_weights={mixed!r} is unknown: use one of "
                             f"{', '.join(MIXED_POLICIES)}")
    codes = list(units)
    rows = [{name: (np.nan if w is None else float(w)) for name, w in units[c].items()}
            for c in codes]
    names = {name for row in rows for name in row} if synonyms else set()
    return _assemble(tuple(codes), codes, list(range(len(codes))), [""] * len(codes), rows,
                     names, mixed, ("custom",), "rollup")


def build_prior_table(kg, targets: Sequence[str], sources: Sequence[str] | None = None,
                      scope: str = "leader", mixed: str = "weighted_only",
                      exclude: Sequence[str] = DEFAULT_EXCLUDED_SYMPTOMS) -> PriorTable:
    """Precompute the symptom arrays of ``targets`` (resolved codes) once; cached per arguments.

    See the module docstring for ``sources``, ``scope`` and ``mixed``.
    """
    from medsyn_utils.kg.graph import normalize_symptom

    sources = tuple(DEFAULT_SOURCES if sources is None else sources)
    unknown = [s for s in sources if s not in SOURCES_ALL]
    if unknown or not sources:
        raise ParameterError(f"unknown symptom source {unknown[0] if unknown else '(none)'!r}: "
                             f"use some of {', '.join(SOURCES_ALL)}")
    if scope not in SCOPES:
        raise ParameterError(f"symptom_scope={scope!r} is unknown: use one of {', '.join(SCOPES)}")
    if mixed not in MIXED_POLICIES:
        raise ParameterError(f"mixed_weights={mixed!r} is unknown: use one of "
                             f"{', '.join(MIXED_POLICIES)}")
    targets = tuple(targets)
    excluded = frozenset(normalize_symptom(s) for s in exclude)
    meta = kg.graph.graph
    key = (meta.get("version"), tuple(sorted(meta.get("sources", {}).items())), targets, sources,
           scope, mixed, excluded)
    if key in _PRIOR_CACHE:
        return _PRIOR_CACHE[key]

    wanted = set(sources)
    synonym_names: set[str] = set()  # terms from MedSyn's translation: comma = synonyms
    unit_code: list[str] = []
    unit_target: list[int] = []
    rows: list[dict[str, dict[str, float]]] = []
    for t_index, target in enumerate(targets):
        node = kg.codes[target]
        subtree = [target, *kg.descendants(target)]
        per_code: dict[str, dict[str, dict[str, float]]] = {}
        for code in subtree:
            found: dict[str, dict[str, float]] = {}
            for symptom, source, weight in _symptom_edges(kg, kg.codes[code]):
                if source in WEIGHT_ORDER:
                    synonym_names.add(symptom)
                if source not in wanted or symptom in excluded:
                    continue
                cell = found.setdefault(symptom, {})
                cell[source] = max(weight, cell.get(source, -np.inf))
            if found:
                per_code[code] = found
        if scope == "leader" and node[0] == "category":
            groups = [(code, [code]) for code in subtree if code in per_code]
        else:
            groups = [(target, [c for c in subtree if c in per_code])]
        for code, members in groups:
            merged: dict[str, dict[str, float]] = {}
            for member in members:
                for symptom, cell in per_code[member].items():
                    into = merged.setdefault(symptom, {})
                    for source, weight in cell.items():
                        into[source] = max(weight, into.get(source, -np.inf))
            unit_code.append(code)
            unit_target.append(t_index)
            rows.append(merged)

    weights_rows = []
    for merged in rows:
        row: dict[str, float] = {}
        for symptom in sorted(merged):
            cell = merged[symptom]
            row[symptom] = next((cell[s] for s in WEIGHT_ORDER if s in cell), np.nan)
        weights_rows.append(row)
    unit_sex = [kg.sex(code) or "" for code in unit_code]
    table = _assemble(targets, unit_code, unit_target, unit_sex, weights_rows, synonym_names,
                      mixed, sources, scope)
    _PRIOR_CACHE[key] = table
    return table


# --------------------------------------------------------------------------- codes


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


# --------------------------------------------------------------------------- patients


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


# --------------------------------------------------------------------------- style examples

EXAMPLE_POLICIES: tuple[str, ...] = ("full_note", "complaints", "full_only")


@dataclass(frozen=True)
class ExampleStore:
    """Real notes per three-character category, for style examples drawn with replacement.

    ``policy``: ``"full_note"`` (default) uses a visit's full note (complaints + anamnesis) where
    the MedSyn mirror has it and its RuMedTop3 complaints otherwise; ``"complaints"`` only the
    complaints; ``"full_only"`` only visits with a full note. Only notes of ``splits`` (train by
    default, so dev/test stay clean for the downstream experiment) with at least ``min_words``
    words are kept.
    """

    categories: dict[str, tuple[int, int]]  # category -> (start, count) into the arrays
    visit_id: np.ndarray
    text: np.ndarray
    source: np.ndarray
    splits: tuple[str, ...]
    min_words: int
    policy: str

    def counts(self, categories: Sequence[str]) -> np.ndarray:
        """Number of stored notes of each category."""
        return np.array([self.categories.get(c[:3], (0, 0))[1] for c in categories], dtype=np.int64)

    def sample(self, categories: Sequence[str], rng: np.random.Generator,
               fallback_text: str) -> pd.DataFrame:
        """One example per task (with replacement); a category without notes gets the template.

        Columns ``example_visit_id`` (None for the template), ``example_text``,
        ``example_source`` (e.g. ``RuMedPrime-note-train``, ``RuMedTop3-train``, ``template``).
        """
        cats = [c[:3] for c in categories]
        spans = np.array([self.categories.get(c, (0, 0)) for c in cats], dtype=np.int64).reshape(-1, 2)
        u = rng.random(len(cats))
        has = spans[:, 1] > 0
        pick = spans[:, 0] + np.floor(u * np.maximum(spans[:, 1], 1)).astype(np.int64)
        pick = np.where(has, pick, 0)
        if len(self.visit_id):
            ids = np.where(has, self.visit_id[np.minimum(pick, len(self.visit_id) - 1)], None)
            texts = np.where(has, self.text[np.minimum(pick, len(self.text) - 1)], fallback_text)
            sources = np.where(has, self.source[np.minimum(pick, len(self.source) - 1)], "template")
        else:
            ids = np.full(len(cats), None, dtype=object)
            texts = np.full(len(cats), fallback_text, dtype=object)
            sources = np.full(len(cats), "template", dtype=object)
        return pd.DataFrame({"example_visit_id": pd.Series(ids, dtype=object),
                             "example_text": pd.Series(texts, dtype=object),
                             "example_source": pd.Series(sources, dtype=object)})


_EXAMPLE_CACHE: dict[tuple, ExampleStore] = {}


def build_example_store(splits: Sequence[str] = ("train",), min_words: int = 30,
                        policy: str = "full_note") -> ExampleStore:
    """Index the real notes of ``splits`` per category (cached per arguments)."""
    from medsyn_utils.core import corpus
    splits = tuple(splits)
    for split in splits:
        if split not in corpus.SPLITS:
            raise ParameterError(f"unknown split {split!r} in splits: use some of "
                                 f"{', '.join(corpus.SPLITS)} (train only keeps dev/test clean)")
    if not splits:
        raise ParameterError("splits is empty: name at least one split, e.g. ['train']")
    if policy not in EXAMPLE_POLICIES:
        raise ParameterError(f"example_policy={policy!r} is unknown: use one of "
                             f"{', '.join(EXAMPLE_POLICIES)}")
    if not isinstance(min_words, (int, np.integer)) or min_words < 0:
        raise ParameterError(f"min_words={min_words!r} must be a non-negative integer")
    key = (splits, int(min_words), policy)
    if key in _EXAMPLE_CACHE:
        return _EXAMPLE_CACHE[key]
    visits = corpus.load_rumedtop3(splits)
    full = corpus.load_full_notes(tuple(s for s in splits if s in corpus.FULL_NOTE_FILES))
    full_text = dict(zip(full["idx"], full["full_text"]))
    rows = []
    for idx, code, text, split in visits[["idx", "code", "text", "split"]].itertuples(index=False):
        note = full_text.get(idx)
        if policy == "complaints":
            chosen, source = text, f"RuMedTop3-{split}"
        elif note:
            chosen, source = note, f"RuMedPrime-note-{split}"
        elif policy == "full_only":
            continue
        else:
            chosen, source = text, f"RuMedTop3-{split}"
        chosen = str(chosen).strip()
        if len(chosen.split()) >= min_words:
            rows.append((str(code)[:3], str(idx), chosen, source))
    rows.sort(key=lambda r: (r[0], r[1]))
    categories: dict[str, tuple[int, int]] = {}
    for i, row in enumerate(rows):
        start, count = categories.get(row[0], (i, 0))
        categories[row[0]] = (start, count + 1)
    store = ExampleStore(
        categories=categories,
        visit_id=np.array([r[1] for r in rows], dtype=object),
        text=np.array([r[2] for r in rows], dtype=object),
        source=np.array([r[3] for r in rows], dtype=object),
        splits=splits, min_words=int(min_words), policy=policy,
    )
    _EXAMPLE_CACHE[key] = store
    return store
