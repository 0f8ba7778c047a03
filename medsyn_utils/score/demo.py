"""A small dataset in the published MedSyn schema, built from real RuMedTop3 *train* notes.

Why: the analysis and downstream notebooks must run (and be tested) before a generation run
exists, and on machines without the published 41k file. The rows look like the published
dataset (several models, priors, example sources, scores) and their codes are real RuMedTop3
categories, so they map onto the 105 downstream classes. The notes themselves are NOT model
output: each one is stitched from sampled symptoms and a lightly shuffled real train complaint of
the same code, and the scores are drawn at random. Never report figures made from it as results
about a model; they only show that the machinery works.

Only train visits are used (style examples and complaints), and symptom strings that occur in a
dev/test complaint are dropped, so the demo never leaks evaluation text into the downstream
experiment.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.core.schema import PUBLISHED_COLUMNS
from medsyn_utils.score.filter import PAPER_PRECISION, PAPER_RECALL

DEMO_MODELS = ("demo-model-a", "demo-model-b", "demo-model-c", "demo-model-d")
# prior label → (uses symptoms, uses a style example)
DEMO_PRIORS = {"symptoms+anamnesis": (True, True), "symptoms": (True, False), "code": (False, False)}
DEMO_SOURCES = ("RuMedPrime", "private data")
# Codes outside RuMedTop3 (so the downstream mapping has something to leave out and count).
OUTSIDE_CODES = ("R51", "U07.1", "A09.0", "T14.0")
SYMPTOM_FILE = "medsyn/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json"
DATA_FILES = ("rumedbench/RuMedTop3/train_v1.jsonl", "rumedbench/RuMedTop3/dev_v1.jsonl",
              "rumedbench/RuMedTop3/test_v1.jsonl", "medsyn/notes/train_v1_symp_anam_75pct.jsonl",
              SYMPTOM_FILE)

# Model and prior offsets of the random scores, so that plots show differences between groups.
_MODEL_SHIFT = dict(zip(DEMO_MODELS, (0.0, 0.04, -0.05, -0.02)))
DEMO_MARK = "DEMO DATA"


def _symptom_lists() -> dict[str, list[str]]:
    """Symptom strings per three-character category, minus any that occur in dev/test text."""
    from medsyn_utils.core.corpus import load_rumedtop3
    from medsyn_utils.core.data import fetch

    with open(fetch(SYMPTOM_FILE), encoding="utf-8") as handle:
        raw: dict[str, list[str]] = json.load(handle)
    held_out = " \n ".join(load_rumedtop3(("dev", "test"))["text"].str.lower())
    lists: dict[str, list[str]] = {}
    for code, symptoms in raw.items():
        keep = [s.strip() for s in symptoms
                if s.strip() and "," not in s and len(s.split()) <= 6 and s.lower() not in held_out]
        lists.setdefault(code[:3], []).extend(keep)
        if len(code) > 3:
            lists.setdefault(code, []).extend(keep)
    return lists


def _subcodes() -> dict[str, list[str]]:
    from medsyn_utils.core.data import fetch

    with open(fetch(SYMPTOM_FILE), encoding="utf-8") as handle:
        raw = json.load(handle)
    codes: dict[str, list[str]] = {}
    for code in raw:
        codes.setdefault(code[:3], []).append(code)
    return codes


def _shuffle_clauses(text: str, rng: np.random.Generator) -> str:
    """Reorder comma-separated clauses and drop a few words: a real complaint, reworded."""
    clauses = [c.strip() for c in re.split(r"[,.;]", text) if c.strip()]
    if not clauses:
        return text
    order = rng.permutation(len(clauses))
    words = " , ".join(clauses[i] for i in order).split()
    keep = [w for w in words if rng.random() > 0.15 or w == ","]
    return " ".join(keep).replace(" ,", ",").strip(", ") + "."


def schema_shaped_dataset(n_rows: int = 300, seed: int = 0, *, extra_columns: bool = False
                          ) -> pd.DataFrame:
    """A dataset in the published schema (``schema.PUBLISHED_COLUMNS``) from real train notes.

    Rows cycle through the 105 RuMedTop3 categories (every category appears once ``n_rows`` ≥ 105)
    plus about 3 % of rows with codes outside RuMedTop3; models, priors and example sources are
    drawn at random; scores are random but shifted by model and prior. ``extra_columns`` adds
    ``example_visit_id``, ``n_symptoms``, ``length_words``, ``filter_applies`` (both scores
    present) and ``passed_filter`` (never where the filter does not apply) for tests that need
    them. Model labels are ``demo-model-a`` … never real model names.
    """
    from medsyn_utils.core.corpus import load_full_notes, load_rumedtop3

    if not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise ParameterError(f"n_rows={n_rows!r} must be a positive integer: ask for at least 1 row")
    rng = np.random.default_rng(seed)
    train = load_rumedtop3("train")
    notes = load_full_notes("train")
    notes = notes[notes["anamnesis"].str.split().str.len() >= 30]
    notes_by_code = {code: group for code, group in notes.groupby("code")}
    visits_by_code = {code: group for code, group in train.groupby("code")}
    symptoms_by_code = _symptom_lists()
    subcodes = _subcodes()
    categories = sorted(visits_by_code)

    n_outside = int(round(0.03 * n_rows)) if n_rows >= 30 else 0
    picks: list[str] = []
    while len(picks) < n_rows - n_outside:
        picks.extend(rng.permutation(categories).tolist())
    codes = picks[: n_rows - n_outside] + list(rng.choice(OUTSIDE_CODES, size=n_outside))
    codes = [codes[i] for i in rng.permutation(len(codes))]

    prior_labels = list(DEMO_PRIORS)
    rows = []
    for i, category in enumerate(codes):
        model = str(rng.choice(DEMO_MODELS))
        prior = str(rng.choice(prior_labels, p=[0.5, 0.3, 0.2]))
        uses_symptoms, uses_example = DEMO_PRIORS[prior]
        inside = category in visits_by_code
        icd = str(rng.choice(subcodes[category])) if inside and category in subcodes else category
        pool = symptoms_by_code.get(icd) or symptoms_by_code.get(category[:3]) or []
        symptoms: list[str] = []
        if uses_symptoms and pool:
            k = int(min(len(pool), rng.integers(2, 6)))
            symptoms = [pool[j] for j in rng.choice(len(pool), size=k, replace=False)]
        if inside:
            visit = visits_by_code[category].iloc[int(rng.integers(len(visits_by_code[category])))]
            body = _shuffle_clauses(visit["text"], rng)
        else:
            body = "Жалобы на общую слабость, недомогание в течение нескольких дней."
        response = (f"Жалобы на {', '.join(symptoms)}. {body}" if symptoms else body)
        source, anamnesis, example_visit = None, None, None
        if uses_example:
            source = str(rng.choice(DEMO_SOURCES, p=[0.8, 0.2]))
            candidates = notes_by_code.get(category)
            if source == "private data":
                anamnesis = "private_data"
            elif candidates is not None and len(candidates):
                note = candidates.iloc[int(rng.integers(len(candidates)))]
                anamnesis, example_visit = note["full_text"], note["idx"]
            else:
                anamnesis = "Пациент обратился с жалобами."
        copied = 0.0
        if example_visit is not None and rng.random() < 0.4:
            # Some notes copy a stretch of their style example (what the copy metric flags).
            words = anamnesis.split()
            start = int(rng.integers(0, max(1, len(words) - 20)))
            stretch = words[start:start + int(rng.integers(8, 21))]
            response = f"{response} {' '.join(stretch)}"
            copied = len(stretch) / max(len(response.split()), 1)
        shift = _MODEL_SHIFT[model] + (0.03 if uses_example else 0.0)
        recall = float(np.clip(rng.normal(0.68 + shift, 0.06), 0, 1)) if symptoms else np.nan
        precision = (float(np.clip(rng.normal(0.70 + shift + 0.15 * copied, 0.05), 0, 1))
                     if anamnesis is not None else np.nan)
        prompt = (f"Напиши анамнез пациента с кодом {icd}"
                  + (f"; симптомы: {', '.join(symptoms)}" if symptoms else "")
                  + ("; пример записи: " + anamnesis[:200] if anamnesis else "") + ".")
        rows.append({
            "idx": i, "ICD-10": icd, "generation_model": model, "prompt": prompt, "prior": prior,
            "example": bool(uses_example), "example_source": source, "response": response,
            "symptoms": ", ".join(symptoms), "anamnesis": anamnesis,
            "symptoms_recall": recall, "anamnesis_precision": precision,
            "example_visit_id": example_visit, "n_symptoms": len(symptoms),
        })
    frame = pd.DataFrame(rows)
    if not extra_columns:
        return frame[list(PUBLISHED_COLUMNS)]
    frame["length_words"] = frame["response"].str.split().str.len()
    frame["filter_applies"] = frame["symptoms_recall"].notna() & frame["anamnesis_precision"].notna()
    frame["passed_filter"] = (frame["filter_applies"] & (frame["symptoms_recall"] >= PAPER_RECALL)
                              & (frame["anamnesis_precision"] > PAPER_PRECISION))
    return frame[list(PUBLISHED_COLUMNS) + ["example_visit_id", "n_symptoms", "length_words",
                                            "filter_applies", "passed_filter"]]
