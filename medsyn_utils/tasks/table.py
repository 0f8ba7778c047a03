"""The task table (stage 02): one row per generation task, reproducible from a seed.

:func:`build_task_table` draws target codes, patients, symptoms and style examples with the
vectorised samplers of :mod:`medsyn_utils.sampling` and renders the prompts of
:mod:`medsyn_utils.prompts`; :func:`write_task_table` writes ``tasks.parquet`` and ``tasks.csv``
byte-identically for the same options and seed. ``medsyn tasks`` does both from the command line.

Each part of a task draws from its own random stream (children of ``numpy.random.SeedSequence
(seed)``), so changing, say, the prompt mix does not change the sampled codes or patients.
"""

from __future__ import annotations

import ast
import io
import json
import os
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from medsyn_utils.tasks import sampling
from medsyn_utils.core.errors import CodeError, InputTableError, ParameterError
from medsyn_utils.core.provenance import write_atomic
from medsyn_utils.core.schema import TASK_COLUMNS

STAGE = "02_prompt_construction"
PARQUET_NAME = "tasks.parquet"
CSV_NAME = "tasks.csv"
DEFAULT_MIX: dict[str, float] = {"symptoms+example": 0.5, "symptoms": 0.4, "code": 0.1}
SYMPTOM_KINDS = ("symptoms", "symptoms+example")


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
    exclude_symptoms: list[str] = list(sampling.DEFAULT_EXCLUDED_SYMPTOMS)
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
        return sampling.allocate(np.ones(len(codes)), n)
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
    from medsyn_utils.kg.graph import load_graph
    from medsyn_utils.tasks.prompts import load_templates, parse_mix

    n, seed = _check_n_seed(n, seed)
    opts = parse_options(options)
    templates = load_templates(opts.templates_dir or None)
    mix = parse_mix(opts.prompt_mix if opts.prompt_mix is not None
                    else (opts.prompt_kinds if opts.prompt_kinds is not None else DEFAULT_MIX),
                    templates)
    needs_symptoms = any(kind in SYMPTOM_KINDS for kind, _ in mix)
    kg = load_graph()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_codes, rng_patients, rng_units, rng_symptoms, rng_examples, rng_kinds = streams
    population = sampling.load_population(opts.min_age)
    store = sampling.build_example_store(opts.splits, opts.min_words, opts.example_policy)
    patient_kw = dict(smoking_male=opts.smoking_male, smoking_female=opts.smoking_female,
                      smoking_min_age=opts.smoking_min_age, married_ceiling=opts.married_ceiling)

    # ---- target codes (and patients, whose sex a sex-specific code fixes)
    selection = opts.code_selection
    if selection == "auto":
        selection = "list" if opts.codes else "frequency"
    if selection == "list":
        targets = list(dict.fromkeys(kg.resolve(code) for code in opts.codes))
        if len(targets) != len(opts.codes):
            raise ParameterError("codes lists a code twice (after normalisation): give each "
                                 "code once and set its count in counts")
    else:
        targets = sampling.universe(kg, opts.code_universe)
    prior = sampling.build_prior_table(kg, targets, opts.symptom_sources, opts.symptom_scope,
                                       opts.mixed_weights, opts.exclude_symptoms)
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
        prior = sampling.build_prior_table(kg, targets, opts.symptom_sources,
                                           opts.symptom_scope, opts.mixed_weights,
                                           opts.exclude_symptoms)
        available = prior.target_symptom_counts()
    target_sex = sampling.code_sexes(kg, targets)

    if selection == "frequency":
        patients = sampling.sample_patients(rng_patients, n, population, **patient_kw)
        task_target = sampling.sample_codes_by_frequency(
            rng_codes, patients["sex"].to_numpy(object), sampling.code_frequencies(kg, targets),
            target_sex, opts.sex_specific_share)
    else:
        if selection == "allocation":
            real = real_note_counts(opts.splits, targets)
            counts = sampling.medsyn_allocation(n, real, prior.target_mean_symptoms())
        task_target = rng_codes.permutation(np.repeat(np.arange(len(targets)), counts))
        patients = sampling.sample_patients(rng_patients, n, population,
                                            target_sex[task_target], **patient_kw)

    # ---- prompt kind and variant per task: exact shares, shuffled
    # kinds first, then variants within each kind, so kind shares are as exact as n allows
    pairs = list(mix)
    kind_names = list(dict.fromkeys(kind for kind, _ in pairs))
    kind_counts = sampling.allocate([sum(w for (k, _), w in mix.items() if k == kind)
                                     for kind in kind_names], n)
    pair_counts = np.zeros(len(pairs), dtype=np.int64)
    for kind, count in zip(kind_names, kind_counts):
        members = [i for i, (k, _) in enumerate(pairs) if k == kind]
        if count:
            pair_counts[members] = sampling.allocate([mix[pairs[i]] for i in members], int(count))
    pair_index = rng_kinds.permutation(np.repeat(np.arange(len(pairs)), pair_counts))
    kinds = np.array([pairs[i][0] for i in pair_index], dtype=object)
    variants = np.array([pairs[i][1] for i in pair_index], dtype=object)

    # ---- symptoms: drawn for every task of a code that has some (a stable stream)
    icd10 = np.array([targets[t] for t in task_target], dtype=object)
    symptoms: list[list[str]] = [[] for _ in range(n)]
    has = available[task_target] > 0
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
    fallback = np.flatnonzero(~has & np.isin(kinds, SYMPTOM_KINDS))
    if len(fallback):
        code_variants = templates.variants("code") if "code" in templates.texts else []
        if not code_variants:
            raise ParameterError("on_missing_symptoms='fallback' needs a 'code' kind in the "
                                 "template catalogue")
        kinds[fallback] = "code"
        variants[fallback] = code_variants[0]

    # ---- style examples: drawn for every task, kept where the prompt uses one
    categories = [code[:3] for code in icd10]
    examples = store.sample(categories, rng_examples, templates.fallback_example)
    uses_example = (kinds == "symptoms+example").tolist()
    example_columns = {
        name: pd.Series([_text(v, "") or None if use else None
                         for v, use in zip(examples[name].to_numpy(object), uses_example)],
                        dtype=object)
        for name in ("example_visit_id", "example_text", "example_source")
    }
    for i in np.flatnonzero(kinds == "code"):
        symptoms[i] = []

    # ---- names and prompts
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


def real_note_counts(splits: list[str], targets: list[str]) -> np.ndarray:
    """RuMedTop3 visits of each target's category in ``splits`` (for the MedSyn allocation)."""
    from medsyn_utils.core import corpus
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


def task_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Key numbers of a task table (for the stage record and the notebook)."""
    symptom_rows = frame["prompt_kind"] != "code"
    example_rows = frame["prompt_kind"] == "symptoms+example"
    return {
        "n_tasks": int(len(frame)),
        "n_codes": int(frame["icd10"].nunique()),
        "n_categories": int(frame["category"].nunique()),
        "prompt_kinds": {k: int(v) for k, v in frame["prompt_kind"].value_counts().sort_index().items()},
        "mean_symptoms": float(frame.loc[symptom_rows, "symptoms"].map(len).mean())
        if symptom_rows.any() else 0.0,
        "example_template_share": float((frame.loc[example_rows, "example_source"] == "template").mean())
        if example_rows.any() else 0.0,
        "female_share": float((frame["sex"] == "female").mean()),
        "mean_age": float(frame["age"].mean()),
        "smoking_share": float(frame["smoking"].mean()),
        "married_share": float((frame["marital_status"] == "married").mean()),
    }


# --------------------------------------------------------------------------- notebook views


def visit_share_distance(distribution: pd.DataFrame) -> float:
    """Total-variation distance between sampled category shares and visit frequencies (0 = same)."""
    return float(0.5 * (distribution["task_share"] - distribution["visit_share"]).abs().sum())


def code_distribution(frame: pd.DataFrame, kg=None) -> pd.DataFrame:
    """Sampled share of each category against its source frequencies.

    ``visit_share`` is the MedSyn share of outpatient visits renormalised over the categories of
    the table; ``train_share`` the category's share of RuMedTop3 train visits (same renormalising).
    """
    from medsyn_utils.core import corpus
    from medsyn_utils.kg.graph import load_graph

    kg = kg or load_graph()
    counts = frame["category"].value_counts()
    cats = sorted(counts.index)
    visit = sampling.code_frequencies(kg, cats)
    train = corpus.load_rumedtop3("train")["code"].str[:3].value_counts()
    train_counts = np.array([train.get(c, 0) for c in cats], dtype=float)
    table = pd.DataFrame({
        "category": cats,
        "name_ru": [kg.name(c) if c in kg.codes else "" for c in cats],
        "tasks": [int(counts[c]) for c in cats],
        "task_share": [counts[c] / len(frame) for c in cats],
        "visit_share": visit / visit.sum(),
        "train_share": train_counts / train_counts.sum() if train_counts.sum() else 0.0,
        "sex_specific": [kg.sex(c) or "" for c in cats],
    })
    return table.sort_values(["tasks", "category"], ascending=[False, True]).reset_index(drop=True)


def demographic_comparison(frame: pd.DataFrame, min_age: int = 9, smoking_male: float = 0.346,
                           smoking_female: float = 0.083, smoking_min_age: int = 16,
                           married_ceiling: float = 0.65) -> pd.DataFrame:
    """Sampled shares of sex, location, age group, smoking and marriage against the population.

    The population column is the 2022 pyramid from ``min_age`` (for smoking and marriage: what
    the sampler's rates give on that pyramid).
    """
    population = sampling.load_population(min_age)
    cells = population.cell_table()
    bins = [0, 18, 30, 45, 60, 75, 200]
    labels = ["<18", "18-29", "30-44", "45-59", "60-74", "75+"]
    cells["age_group"] = pd.cut(cells["age"], bins, right=False, labels=labels).astype(str)
    sampled = frame.assign(age_group=pd.cut(frame["age"], bins, right=False,
                                            labels=labels).astype(str))
    rows = []
    for variable in ("sex", "location", "age_group"):
        expected = cells.groupby(variable)["share"].sum()
        observed = sampled[variable].value_counts(normalize=True)
        for value in expected.index:
            rows.append((variable, value, float(observed.get(value, 0.0)), float(expected[value])))
    smoke_rate = np.where(cells["sex"] == "male", smoking_male, smoking_female)
    smoke = float((cells["share"] * smoke_rate * (cells["age"] >= smoking_min_age)).sum())
    rows.append(("smoking", "smoker", float(frame["smoking"].mean()), smoke))
    group = np.searchsorted([g[1] for g in sampling.MARRIAGE_GROUPS], cells["age"], side="left")
    sex_idx = (cells["sex"] == "female").astype(int).to_numpy()
    married = float((cells["share"] * married_ceiling
                     * population.married_cdf[sex_idx, group]).sum())
    rows.append(("marital_status", "married",
                 float((frame["marital_status"] == "married").mean()), married))
    return pd.DataFrame(rows, columns=["variable", "value", "sampled", "population"])


def prompt_examples(frame: pd.DataFrame, per_kind: int = 1) -> pd.DataFrame:
    """The first ``per_kind`` tasks of every prompt kind and variant (for showing prompts)."""
    return (frame.groupby(["prompt_kind", "prompt_variant"], sort=True, group_keys=False)
            .head(per_kind).sort_values(["prompt_kind", "prompt_variant", "task_id"]))


def format_prompt(row: Mapping[str, Any] | pd.Series) -> str:
    """A task's prompts as readable text: header, chat messages, completion document."""
    head = (f"{row['task_id']} · {row['prompt_kind']}/{row['prompt_variant']} · {row['icd10']} "
            f"{row['code_name_ru']} · symptoms: {', '.join(row['symptoms']) or '—'} · example: "
            f"{_text(row['example_source'], '—')} {_text(row['example_visit_id'], '')}")
    return (f"{head}\n--- system ---\n{row['system_prompt']}\n--- user ---\n"
            f"{row['user_prompt']}\n--- completion (base models) ---\n{row['completion_prompt']}")


def options_from(values: Mapping[str, Any]) -> dict[str, Any]:
    """The task options among a notebook's variables (its parameters cell), by name."""
    return {name: values[name] for name in TaskOptions.model_fields if name in values}


def _text(value: Any, empty: str) -> str:
    return empty if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def resample_preview(code: str, n: int = 3, seed: int = 0, **options: Any) -> pd.DataFrame:
    """``n`` tasks for one code (what the notebook's picker shows); other options as given."""
    options = {k: v for k, v in options.items()
               if k not in ("codes", "counts", "code_selection", "n", "seed", *NOTEBOOK_ONLY)}
    return build_task_table(n, seed, codes=[code], code_selection="list", **options)


def resample_widget(choices: list[str], n: int = 3, seed: int = 0, **options: Any):
    """An ipywidgets picker: choose a code and a seed, re-sample and read the prompts.

    Returns ``None`` (and the notebook carries on) where ipywidgets is not installed; headless
    runs display the widget's text form and never fire its callback.
    """
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    picker = widgets.Dropdown(options=choices, value=choices[0] if choices else None,
                              description="code")
    seed_box = widgets.IntText(value=seed, description="seed")
    button = widgets.Button(description="re-sample")
    output = widgets.Output()

    def _show(_=None) -> None:
        output.clear_output()
        with output:
            try:
                table = resample_preview(picker.value, n, int(seed_box.value), **options)
                for _, row in table.iterrows():
                    print(format_prompt(row), end="\n\n")
            except Exception as error:  # shown to the user in the widget, not raised
                print(f"error: {error}")

    button.on_click(_show)
    return widgets.VBox([widgets.HBox([picker, seed_box, button]), output])


# --------------------------------------------------------------------------- files

_ARROW_SCHEMA = pa.schema([
    (name, pa.list_(pa.string()) if name == "symptoms" else
     pa.int64() if name in ("age", "seed") else pa.bool_() if name == "smoking" else pa.string())
    for name in TASK_COLUMNS
])


def _check_columns(frame: pd.DataFrame, where: str) -> None:
    missing = [c for c in TASK_COLUMNS if c not in frame.columns]
    if missing:
        raise InputTableError(f"{where} lacks task column(s) {', '.join(missing)}: rebuild it "
                              f"with build_task_table / `medsyn tasks`")
    if frame.empty:
        raise InputTableError(f"{where} has no tasks: build it with n >= 1")


def task_table_bytes(frame: pd.DataFrame) -> tuple[bytes, bytes]:
    """``(parquet, csv)`` bytes of a task table; same table → same bytes.

    Parquet carries no pandas metadata (it would record library versions); lists are written as
    Arrow lists in Parquet and as JSON arrays in the CSV.
    """
    _check_columns(frame, "task table")
    frame = frame[list(TASK_COLUMNS)]
    columns = {}
    for name in TASK_COLUMNS:
        values = frame[name].tolist()
        if name == "symptoms":
            values = [list(v) for v in values]
        elif name in ("age", "seed"):
            values = [int(v) for v in values]
        elif name == "smoking":
            values = [bool(v) for v in values]
        else:
            values = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                      for v in values]
        columns[name] = values
    table = pa.table(columns, schema=_ARROW_SCHEMA).replace_schema_metadata(None)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", write_statistics=True)
    csv_frame = pd.DataFrame({
        name: ([json.dumps(v, ensure_ascii=False) for v in columns[name]] if name == "symptoms"
               else columns[name]) for name in TASK_COLUMNS
    })
    csv_text = csv_frame.to_csv(index=False, lineterminator="\n")
    return buffer.getvalue(), csv_text.encode("utf-8")


def write_task_table(frame: pd.DataFrame, folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``tasks.parquet`` and ``tasks.csv`` into ``folder`` (atomically, byte-reproducibly)."""
    from medsyn_utils.core.paths import run_dir

    out = run_dir(folder)
    parquet, csv = task_table_bytes(frame)
    return {"parquet": write_atomic(out / PARQUET_NAME, parquet),
            "csv": write_atomic(out / CSV_NAME, csv)}


def load_task_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Any task table on disk (.parquet, .csv, .jsonl, .json): stage 02's or one made by hand.

    The one reader every stage uses; each stage then checks the columns it needs (generation only
    needs ids and prompts). Symptom lists written as JSON text (CSV) come back as lists.
    """
    from medsyn_utils.core.paths import resolve

    file = resolve(path)
    if not file.is_file():
        raise InputTableError(f"task table {path} does not exist: run notebook 02 or "
                              f"`medsyn tasks` first, or pass the right path")
    suffix = file.suffix.lower()
    readers = {".parquet": pd.read_parquet, ".csv": lambda f: pd.read_csv(f, dtype={"task_id": str}),
               ".jsonl": lambda f: pd.read_json(f, lines=True, dtype={"task_id": str}),
               ".ndjson": lambda f: pd.read_json(f, lines=True, dtype={"task_id": str}),
               ".json": lambda f: pd.read_json(f, dtype={"task_id": str})}
    if suffix not in readers:
        raise InputTableError(f"task table {path} has an unknown format {suffix!r}: use .parquet, "
                              f".csv or .jsonl")
    try:
        frame = readers[suffix](file)
    except (ValueError, OSError, ImportError) as error:
        raise InputTableError(f"task table {path} cannot be read ({str(error).splitlines()[0][:120]}): "
                              f"rebuild it with notebook 02") from None
    if "symptoms" in frame.columns:
        frame["symptoms"] = [_list_from_text(v) for v in frame["symptoms"]]
    return frame


def _list_from_text(value: Any) -> Any:
    """A symptom list written as text (JSON, or a Python list as pandas writes it) → a list."""
    if not isinstance(value, str) or not value.startswith("["):
        return value
    try:
        return json.loads(value)
    except ValueError:
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        return list(parsed) if isinstance(parsed, (list, tuple)) else value


def read_task_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A task table from a run folder, ``tasks.parquet`` or ``tasks.csv``; symptoms as lists."""
    from medsyn_utils.core.paths import resolve

    path = resolve(path)
    if path.is_dir():
        path = path / PARQUET_NAME if (path / PARQUET_NAME).is_file() else path / CSV_NAME
    if not path.is_file():
        raise InputTableError(f"no task table at {path}: build one with `medsyn tasks --out "
                              f"{path.parent}` or notebook 02")
    if path.suffix == ".parquet":
        frame = pq.read_table(path).to_pandas()
        frame["symptoms"] = [list(v) if v is not None else [] for v in frame["symptoms"]]
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["symptoms"] = [json.loads(v) if v else [] for v in frame["symptoms"]]
        for name in ("example_visit_id", "example_text", "example_source"):
            frame[name] = [v if v != "" else None for v in frame[name]]
        frame["age"] = frame["age"].astype(np.int64)
        frame["seed"] = frame["seed"].astype(np.int64)
        frame["smoking"] = frame["smoking"].map({"True": True, "False": False}).astype(bool)
    _check_columns(frame, str(path))
    for name in ("example_visit_id", "example_text", "example_source"):
        frame[name] = pd.Series([None if pd.isna(v) else str(v) for v in frame[name]],
                                dtype=object, index=frame.index)
    return frame[list(TASK_COLUMNS)]


NOTEBOOK_ONLY = ("run_dir", "data_dir", "show_per_kind", "picker_code")  # not task options


def load_params(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Task options from a YAML file.

    A runner parameter file (``params/default.yaml``) has a ``tasks:`` mapping (notebook 02's
    parameters) and a ``common:`` one (``seed``, ``data_dir``): both are read, ``tasks`` winning.
    Any other file is a plain mapping of options.
    """
    if not path:
        return {}
    from medsyn_utils.core.paths import resolve

    file = resolve(path)
    if not file.is_file():
        raise ParameterError(f"params file {path} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ParameterError(f"params file {path} is not valid YAML: "
                             f"{str(error).splitlines()[0]}") from error
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
    from medsyn_utils.core import corpus
    from medsyn_utils.kg import graph
    files = [*graph.GRAPH_FILES, *sampling.DEMOGRAPHIC_FILES]
    files += [corpus.RUMEDTOP3_FILES[s] for s in opts.splits]
    files += [corpus.FULL_NOTE_FILES[s] for s in opts.splits if s in corpus.FULL_NOTE_FILES]
    return list(dict.fromkeys(files))
