"""Building the task table (stage 02): one row per generation task, reproducible from a seed.

:func:`build_task_table` draws target codes (:mod:`~medsyn_utils.tasks.targets`), patients
(:mod:`~medsyn_utils.tasks.patients`), symptoms (:mod:`~medsyn_utils.tasks.symptoms`) and style
examples (:mod:`~medsyn_utils.tasks.examples`), and renders the prompts of
:mod:`~medsyn_utils.tasks.prompts`; :func:`medsyn_utils.tasks.table.write_task_table` writes it
byte-identically for the same options and seed. ``medsyn tasks`` does both from the command line.

Each part of a task draws from its own random stream (children of ``numpy.random.SeedSequence
(seed)``), so changing, say, the prompt mix does not change the sampled codes or patients.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from medsyn_utils.core import corpus
from medsyn_utils.core.errors import CodeError, ParameterError
from medsyn_utils.core.schema import TASK_COLUMNS
from medsyn_utils.kg import graph
from medsyn_utils.tasks import patients as patient_sampling
from medsyn_utils.tasks import targets as target_sampling
from medsyn_utils.tasks.examples import build_example_store
from medsyn_utils.tasks.prompts import load_templates, parse_mix
from medsyn_utils.tasks.symptoms import DEFAULT_EXCLUDED_SYMPTOMS, PriorTable, build_prior_table
from medsyn_utils.tasks.table import EXAMPLE_COLUMNS, text_or

STAGE = "02_prompt_construction"
DEFAULT_MIX: dict[str, float] = {"symptoms+example": 0.5, "symptoms": 0.4, "code": 0.1}
SYMPTOM_KINDS = ("symptoms", "symptoms+example")
NOTEBOOK_ONLY = ("run_dir", "data_dir", "show_per_kind", "picker_code", "demo")  # not task options



class TaskOptions(BaseModel):
    """Options of :func:`build_task_table` (all optional; defaults follow the method)."""

    model_config = ConfigDict(extra="forbid")

    codes: list[str] = []  # explicit target codes (categories or sub-codes); empty = by selection
    counts: list[int] | None = None  # tasks per listed code (sum = n); None = split n evenly
    code_selection: Literal["auto", "list", "frequency", "allocation"] = "auto"  # auto: list if codes
    code_universe: Literal["rumedtop3", "all"] = "rumedtop3"  # categories for frequency/allocation
    sex_specific_share: float | None = 0.15  # share of sex-specific draws (MedSyn); None = natural
    temperature: float = 10.0  # T of softmax(w / T)
    k_min: int = 2  # fewest symptoms per task (capped by what a code has)
    k_max: int = 5  # most symptoms per task
    symptom_sources: list[str] | None = None  # graph sources; None = all five
    symptom_scope: Literal["leader", "rollup"] = "leader"  # random sub-code, or the category's union
    mixed_weights: Literal["weighted_only", "fill_min", "uniform"] = "weighted_only"
    exclude_symptoms: list[str] = list(DEFAULT_EXCLUDED_SYMPTOMS)
    pick_synonym: bool = True  # one variant of "a, b" synonym groups of translated terms
    prompt_mix: dict[str, float] | None = None  # {"kind" or "kind/variant": weight}; None = default
    prompt_kinds: list[str] | None = None  # shorthand: these kinds/variants in equal shares
    example_policy: Literal["full_note", "complaints", "full_only"] = "full_note"
    min_words: int = 30  # shortest style example, in words
    splits: list[str] = ["train"]  # RuMedTop3 splits style examples come from
    min_age: int = 9
    smoking_male: float = 0.346
    smoking_female: float = 0.083
    smoking_min_age: int = 16
    married_ceiling: float = 0.65  # married share of the oldest age group
    on_missing_symptoms: Literal["error", "fallback"] = "error"  # fallback: prompt(code) instead
    templates_dir: str = ""  # folder of prompt templates; empty = the packaged ones

    @field_validator("counts", "symptom_sources", "prompt_kinds", "prompt_mix", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        """An empty list or mapping (a notebook parameter's "nothing") means the default."""
        return None if isinstance(value, (list, tuple, dict)) and not value else value


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "options"
    if first.get("type") == "extra_forbidden":
        return (f"unknown task option {where!r}: valid options are "
                f"{', '.join(TaskOptions.model_fields)}")
    return f"task option {where!r}: {first.get('msg')} (got {first.get('input')!r})"


def parse_options(options: Mapping[str, Any] | TaskOptions | None = None) -> TaskOptions:
    """Validate options; every problem is a one-line :class:`ParameterError` naming the option."""
    if isinstance(options, TaskOptions):
        opts = options
    else:
        try:
            opts = TaskOptions(**dict(options or {}))
        except ValidationError as error:
            raise ParameterError(_one_line(error)) from None
    if not opts.temperature > 0 or not np.isfinite(opts.temperature):
        raise ParameterError(f"temperature={opts.temperature} must be positive (the method uses "
                             f"T=10; smaller is greedier, larger flatter)")
    if opts.k_min < 1:
        raise ParameterError(f"k_min={opts.k_min} must be at least 1 (the method uses 2..5)")
    if opts.k_min > opts.k_max:
        raise ParameterError(f"k_min={opts.k_min} is larger than k_max={opts.k_max}: use "
                             f"k_min <= k_max")
    if opts.sex_specific_share is not None and not 0 <= opts.sex_specific_share <= 1:
        raise ParameterError(f"sex_specific_share={opts.sex_specific_share} must be in [0, 1] "
                             f"or null")
    if opts.prompt_mix is not None and opts.prompt_kinds is not None:
        raise ParameterError("give prompt_mix or prompt_kinds, not both")
    if opts.code_selection == "list" and not opts.codes:
        raise ParameterError("code_selection='list' needs codes: list the ICD-10 codes")
    if opts.codes and opts.code_selection in ("frequency", "allocation"):
        raise ParameterError(f"codes are given but code_selection={opts.code_selection!r}: use "
                             f"'list' (or 'auto'), or leave codes empty")
    if opts.counts is not None and not opts.codes:
        raise ParameterError("counts are given without codes: list the codes they belong to")
    return opts


def _check_n_seed(n: Any, seed: Any) -> tuple[int, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ParameterError(f"n={n!r} must be a positive integer (number of tasks)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed={seed!r} must be a non-negative integer")
    return int(n), int(seed)


def _list_counts(opts: TaskOptions, n: int, codes: list[str]) -> np.ndarray:
    if opts.counts is None:
        return target_sampling.allocate(np.ones(len(codes)), n)
    counts = np.asarray(opts.counts, dtype=np.int64)
    if len(counts) != len(codes):
        raise ParameterError(f"counts has {len(counts)} entries for {len(codes)} codes: give one "
                             f"count per code")
    if np.any(counts < 0) or int(counts.sum()) != n:
        raise ParameterError(f"counts sum to {int(counts.sum())} but n={n}: make them "
                             f"non-negative and sum to n")
    return counts


def build_task_table(n: int, seed: int, **options: Any) -> pd.DataFrame:
    """Draw ``n`` generation tasks with ``seed``; columns are exactly ``schema.TASK_COLUMNS``.

    Options are those of :class:`TaskOptions`. Bad input (unknown code or option, no symptoms
    when a symptom prompt is asked and ``on_missing_symptoms='error'``, T ≤ 0, k_min > k_max,
    n ≤ 0, an unknown prompt kind, a broken template) raises a one-line error naming it.
    """
    n, seed = _check_n_seed(n, seed)
    opts = parse_options(options)
    templates = load_templates(opts.templates_dir or None)
    mix = parse_mix(opts.prompt_mix if opts.prompt_mix is not None
                    else (opts.prompt_kinds if opts.prompt_kinds is not None else DEFAULT_MIX),
                    templates)
    needs_symptoms = any(kind in SYMPTOM_KINDS for kind, _ in mix)
    kg = graph.load_graph()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_codes, rng_patients, rng_units, rng_symptoms, rng_examples, rng_kinds = streams
    store = build_example_store(opts.splits, opts.min_words, opts.example_policy)

    targets, prior, task_target, patients = _codes_and_patients(
        kg, opts, n, needs_symptoms, rng_codes, rng_patients)
    kinds, variants = _prompt_pairs(mix, n, rng_kinds)
    icd10, symptoms, has = _draw_symptoms(prior, targets, task_target, patients, opts,
                                          rng_units, rng_symptoms)
    _fall_back_to_code(templates, kinds, variants, ~has & np.isin(kinds, SYMPTOM_KINDS))

    # style examples: drawn for every task, kept where the prompt uses one
    categories = [code[:3] for code in icd10]
    examples = store.sample(categories, rng_examples, templates.fallback_example)
    example_columns = _kept_examples(examples, kinds == "symptoms+example")
    for i in np.flatnonzero(kinds == "code"):
        symptoms[i] = []

    names = {code: (kg.name(code) or kg.name(code[:3])) for code in set(icd10) | set(categories)}
    frame = pd.DataFrame({
        "task_id": [f"t{i + 1:06d}" for i in range(n)],
        "icd10": icd10.astype(str),
        "category": categories,
        "code_name_ru": [names[c] for c in icd10],
        "prompt_kind": kinds.astype(str),
        "prompt_variant": variants.astype(str),
        "symptoms": symptoms,
        **example_columns,
        "sex": patients["sex"].to_numpy(object).astype(str),
        "age": patients["age"].to_numpy(np.int64),
        "location": patients["location"].to_numpy(object).astype(str),
        "marital_status": patients["marital_status"].to_numpy(object).astype(str),
        "smoking": patients["smoking"].to_numpy(bool),
    })
    rendered = [_render(templates, row, names, opts.smoking_min_age)
                for row in frame.itertuples(index=False)]
    frame["system_prompt"] = [r["system"] for r in rendered]
    frame["user_prompt"] = [r["user"] for r in rendered]
    frame["completion_prompt"] = [r["completion"] for r in rendered]
    frame["seed"] = np.full(n, seed, dtype=np.int64)
    return frame[list(TASK_COLUMNS)]


def _fall_back_to_code(templates, kinds: np.ndarray, variants: np.ndarray,
                       rows: np.ndarray) -> None:
    """Tasks of a code without symptoms get the code prompt (on_missing_symptoms='fallback')."""
    fallback = np.flatnonzero(rows)
    if len(fallback):
        code_variants = templates.variants("code") if "code" in templates.texts else []
        if not code_variants:
            raise ParameterError("on_missing_symptoms='fallback' needs a 'code' kind in the "
                                 "template catalogue")
        kinds[fallback] = "code"
        variants[fallback] = code_variants[0]


def _kept_examples(examples: pd.DataFrame, used: np.ndarray) -> dict[str, pd.Series]:
    """The example columns, empty (None) where the task's prompt uses no example."""
    return {
        name: pd.Series([text_or(v, "") or None if use else None
                         for v, use in zip(examples[name].to_numpy(object), used.tolist())],
                        dtype=object)
        for name in EXAMPLE_COLUMNS
    }


def _target_list(kg, opts: TaskOptions, selection: str) -> list[str]:
    if selection != "list":
        return target_sampling.universe(kg, opts.code_universe)
    targets = list(dict.fromkeys(kg.resolve(code) for code in opts.codes))
    if len(targets) != len(opts.codes):
        raise ParameterError("codes lists a code twice (after normalisation): give each "
                             "code once and set its count in counts")
    return targets


def _prior(kg, targets: list[str], opts: TaskOptions) -> PriorTable:
    return build_prior_table(kg, targets, opts.symptom_sources, opts.symptom_scope,
                             opts.mixed_weights, opts.exclude_symptoms)


def _codes_and_patients(kg, opts: TaskOptions, n: int, needs_symptoms: bool,
                        rng_codes: np.random.Generator, rng_patients: np.random.Generator
                        ) -> tuple[list[str], PriorTable, np.ndarray, pd.DataFrame]:
    """Targets, their prior, each task's target index and the patients (whose sex a
    sex-specific code fixes)."""
    selection = opts.code_selection
    if selection == "auto":
        selection = "list" if opts.codes else "frequency"
    targets = _target_list(kg, opts, selection)
    prior = _prior(kg, targets, opts)
    available = prior.target_symptom_counts()
    if selection == "list":
        empty = [t for t, a in zip(targets, available) if a == 0]
        if empty and needs_symptoms and opts.on_missing_symptoms == "error":
            raise CodeError(f"code {empty[0]} has no symptoms under symptom_sources="
                            f"{list(prior.sources)}: add sources, drop the code, or set "
                            f"on_missing_symptoms='fallback' (prompt(code) for it)")
        counts = _list_counts(opts, n, targets)
    else:
        keep = available > 0 if needs_symptoms else np.ones(len(targets), dtype=bool)
        if not keep.any():
            raise ParameterError("no category of the universe has symptoms under the chosen "
                                 "symptom_sources: choose other sources")
        targets = [t for t, k in zip(targets, keep) if k]
        prior = _prior(kg, targets, opts)
    target_sex = target_sampling.code_sexes(kg, targets)
    population = patient_sampling.load_population(opts.min_age)
    patient_kw = dict(smoking_male=opts.smoking_male, smoking_female=opts.smoking_female,
                      smoking_min_age=opts.smoking_min_age, married_ceiling=opts.married_ceiling)
    if selection == "frequency":
        patients = patient_sampling.sample_patients(rng_patients, n, population, **patient_kw)
        task_target = target_sampling.sample_codes_by_frequency(
            rng_codes, patients["sex"].to_numpy(object),
            target_sampling.code_frequencies(kg, targets), target_sex, opts.sex_specific_share)
        return targets, prior, task_target, patients
    if selection == "allocation":
        real = real_note_counts(opts.splits, targets)
        counts = target_sampling.medsyn_allocation(n, real, prior.target_mean_symptoms())
    task_target = rng_codes.permutation(np.repeat(np.arange(len(targets)), counts))
    patients = patient_sampling.sample_patients(rng_patients, n, population,
                                                target_sex[task_target], **patient_kw)
    return targets, prior, task_target, patients


def _prompt_pairs(mix: Mapping[tuple[str, str], float], n: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Prompt kind and variant per task: exact shares, shuffled.

    Kinds first, then variants within each kind, so kind shares are as exact as n allows.
    """
    pairs = list(mix)
    kind_names = list(dict.fromkeys(kind for kind, _ in pairs))
    kind_counts = target_sampling.allocate(
        [sum(w for (k, _), w in mix.items() if k == kind) for kind in kind_names], n)
    pair_counts = np.zeros(len(pairs), dtype=np.int64)
    for kind, count in zip(kind_names, kind_counts):
        members = [i for i, (k, _) in enumerate(pairs) if k == kind]
        if count:
            pair_counts[members] = target_sampling.allocate([mix[pairs[i]] for i in members],
                                                            int(count))
    pair_index = rng.permutation(np.repeat(np.arange(len(pairs)), pair_counts))
    kinds = np.array([pairs[i][0] for i in pair_index], dtype=object)
    variants = np.array([pairs[i][1] for i in pair_index], dtype=object)
    return kinds, variants


def _draw_symptoms(prior: PriorTable, targets: list[str], task_target: np.ndarray,
                   patients: pd.DataFrame, opts: TaskOptions, rng_units: np.random.Generator,
                   rng_symptoms: np.random.Generator
                   ) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    """Each task's code (a leader sub-code where drawn), symptoms, and whether its code has any.

    Drawn for every task of a code that has symptoms, whatever its prompt kind, so the streams
    stay stable when the prompt mix changes.
    """
    icd10 = np.array([targets[t] for t in task_target], dtype=object)
    symptoms: list[list[str]] = [[] for _ in range(len(task_target))]
    has = prior.target_symptom_counts()[task_target] > 0
    rows = np.flatnonzero(has)
    if len(rows):
        units = prior.choose_units(task_target[rows], rng_units, opts.k_min,
                                   patients["sex"].to_numpy(object)[rows])
        slots, _ = prior.sample_symptoms(units, rng_symptoms, opts.k_min, opts.k_max,
                                         opts.temperature)
        drawn = prior.symptom_lists(units, slots, rng_symptoms, opts.pick_synonym)
        icd10[rows] = prior.unit_code[units]
        for row, items in zip(rows.tolist(), drawn):
            symptoms[row] = items
    return icd10, symptoms, has


def real_note_counts(splits: list[str], targets: list[str]) -> np.ndarray:
    """RuMedTop3 visits of each target's category in ``splits`` (for the MedSyn allocation)."""
    visits = corpus.load_rumedtop3(tuple(splits))
    counts = visits["code"].str[:3].value_counts()
    return np.array([counts.get(t[:3], 0) for t in targets], dtype=float)


def _render(templates, row, names: Mapping[str, str], smoking_min_age: int) -> dict[str, str]:
    fields = {
        "symptoms": ", ".join(row.symptoms),
        "example": row.example_text or "",
        "patient": templates.patient_phrase(row.sex, int(row.age), row.marital_status,
                                            bool(row.smoking), row.location, smoking_min_age),
        "code": row.icd10,
        "code_name": row.code_name_ru,
        "category": row.category,
        "category_name": names.get(row.category, ""),
        "sex": templates.sex_word(row.sex),
        "age": templates.age_words(int(row.age)),
    }
    return templates.render(row.prompt_kind, row.prompt_variant, fields)


def options_from(values: Mapping[str, Any]) -> dict[str, Any]:
    """The task options among a notebook's variables (its parameters cell), by name."""
    return {name: values[name] for name in TaskOptions.model_fields if name in values}


def load_params(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Task options from a YAML file.

    A runner parameter file (``params/default.yaml``) has a ``tasks:`` mapping (notebook 02's
    parameters) and a ``common:`` one (``seed``, ``data_dir``): both are read, ``tasks`` winning.
    Any other file is a plain mapping of options.
    """
    if not path:
        return {}
    from medsyn_utils.core.paths import resolve

    from medsyn_utils.core.checks import read_yaml

    data = read_yaml(resolve(path), "params file") or {}  # a symlink loop, not "does not exist"
    if not isinstance(data, dict):
        raise ParameterError(f"params file {path} must hold a mapping of task options")
    if isinstance(data.get("tasks"), dict) or isinstance(data.get("common"), dict):
        common = data.get("common") if isinstance(data.get("common"), dict) else {}
        merged = {k: v for k, v in common.items() if k in ("seed", "n", "data_dir")}
        merged.update(data.get("tasks") or {})
        data = merged
    return dict(data)



def task_data_files(opts: TaskOptions) -> list[str]:
    """Registry names the task table was drawn from (for the stage record)."""
    files = [*graph.GRAPH_FILES, *patient_sampling.DEMOGRAPHIC_FILES]
    files += [corpus.RUMEDTOP3_FILES[s] for s in opts.splits]
    files += [corpus.FULL_NOTE_FILES[s] for s in opts.splits if s in corpus.FULL_NOTE_FILES]
    return list(dict.fromkeys(files))
