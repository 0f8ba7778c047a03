"""Symptom priors of the method: which symptoms a task's code draws, and how likely each is.

Just over 400 lines: the symptom prior table and its vectorised sampler share one data layout.

* :class:`PriorTable` — one row per *sampling unit* (a code whose symptoms are drawn together),
  padded symptom ids and weights; symptoms are drawn without replacement with probabilities
  ``softmax(w / T)`` by the Gumbel-top-k trick, which gives exactly the distribution of
  successive weighted draws without replacement (``numpy.random.choice(replace=False, p=...)``).
  Everything is precomputed once into compact arrays, then thousands of tasks are drawn at once
  with a ``numpy.random.Generator`` (no pandas query per task).

Symptom sources and weights
---------------------------
Symptoms come from the knowledge graph (:mod:`medsyn_utils.kg.graph`); ``sources`` chooses which of
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from medsyn_utils.core.errors import CodeError, ParameterError
from medsyn_utils.kg.sources import normalize_symptom

SOURCES_ALL: tuple[str, ...] = ("medsyn_tfidf", "medsyn_list", "wikimed", "hsdn", "rumedprime_train")
DEFAULT_SOURCES: tuple[str, ...] = SOURCES_ALL
WEIGHT_ORDER: tuple[str, ...] = ("medsyn_tfidf", "hsdn")  # first that weights a symptom wins
MIXED_POLICIES: tuple[str, ...] = ("weighted_only", "fill_min", "uniform")
SCOPES: tuple[str, ...] = ("leader", "rollup")
# Placeholder "symptoms" of the MedSyn table that the authors' sampler skipped as well.
DEFAULT_EXCLUDED_SYMPTOMS: tuple[str, ...] = ("вес при рождении", "кома", "вес тела", "вес плода")



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


def _check_prior_options(sources: Sequence[str] | None, scope: str, mixed: str
                         ) -> tuple[str, ...]:
    """The symptom sources as a tuple; a one-line error for an unknown source, scope or policy."""
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
    return sources


def _code_symptoms(kg, codes: Sequence[str], wanted: set[str], excluded: frozenset[str],
                   synonym_names: set[str]) -> dict[str, dict[str, dict[str, float]]]:
    """``code → symptom → source → weight`` of each code's own edges from the wanted sources.

    Adds to ``synonym_names`` every symptom named by a weighted (translated) source.
    """
    per_code: dict[str, dict[str, dict[str, float]]] = {}
    for code in codes:
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
    return per_code


def build_prior_table(kg, targets: Sequence[str], sources: Sequence[str] | None = None,
                      scope: str = "leader", mixed: str = "weighted_only",
                      exclude: Sequence[str] = DEFAULT_EXCLUDED_SYMPTOMS) -> PriorTable:
    """Precompute the symptom arrays of ``targets`` (resolved codes) once; cached per arguments.

    See the module docstring for ``sources``, ``scope`` and ``mixed``.
    """
    sources = _check_prior_options(sources, scope, mixed)
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
        per_code = _code_symptoms(kg, subtree, wanted, excluded, synonym_names)
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
