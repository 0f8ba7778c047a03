"""Views of a task table for stage 02's notebook: summaries, comparisons, prompts, a picker.

Key numbers for the stage record (:func:`task_summary`), sampled shares against their sources
(:func:`code_distribution`, :func:`demographic_comparison`), rendered prompts and an ipywidgets
re-sampling picker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.core import corpus
from medsyn_utils.kg import graph
from medsyn_utils.tasks import patients as patient_sampling
from medsyn_utils.tasks.build import NOTEBOOK_ONLY, build_task_table
from medsyn_utils.tasks.table import text_or
from medsyn_utils.tasks.targets import code_frequencies


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


def visit_share_distance(distribution: pd.DataFrame) -> float:
    """Total-variation distance between sampled category shares and visit frequencies (0 = same)."""
    return float(0.5 * (distribution["task_share"] - distribution["visit_share"]).abs().sum())


def code_distribution(frame: pd.DataFrame, kg=None) -> pd.DataFrame:
    """Sampled share of each category against its source frequencies.

    ``visit_share`` is the MedSyn share of outpatient visits renormalised over the categories of
    the table; ``train_share`` the category's share of RuMedTop3 train visits (same renormalising).
    """
    kg = kg or graph.load_graph()
    counts = frame["category"].value_counts()
    cats = sorted(counts.index)
    visit = code_frequencies(kg, cats)
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
    population = patient_sampling.load_population(min_age)
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
    group = np.searchsorted([g[1] for g in patient_sampling.MARRIAGE_GROUPS], cells["age"],
                            side="left")
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
            f"{text_or(row['example_source'], '—')} {text_or(row['example_visit_id'], '')}")
    return (f"{head}\n--- system ---\n{row['system_prompt']}\n--- user ---\n"
            f"{row['user_prompt']}\n--- completion (base models) ---\n{row['completion_prompt']}")


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
