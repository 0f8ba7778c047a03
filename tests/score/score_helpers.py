"""Shared inputs of the score tests: a few tiny-tokenizer sentences, a task table, a store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medsyn_utils.core import artefacts
from medsyn_utils.core.schema import STORE_FIELDS, TASK_COLUMNS
from medsyn_utils.testing.tiny import SENTENCES

LAYER = 3
NOTES = list(SENTENCES[:6])
SYMPTOMS = ["головная боль, слабость", "кашель, насморк", "боль в спине, онемение",
            "давление, одышка", "жажда, сухость во рту", "изжога, тошнота"]
EXAMPLES = list(SENTENCES[2:8])


def make_tasks() -> pd.DataFrame:
    rows = []
    kinds = ["symptoms+example", "symptoms", "code", "symptoms+example"]
    for i, kind in enumerate(kinds):
        rows.append({
            "task_id": f"t{i:06d}", "icd10": "J06.9", "category": "J06",
            "code_name_ru": "Острая инфекция верхних дыхательных путей неуточненная",
            "prompt_kind": kind, "prompt_variant": "style" if "example" in kind else "short",
            "symptoms": [] if kind == "code" else SYMPTOMS[i].split(", "),
            "example_visit_id": "q1" if "example" in kind else None,
            "example_text": EXAMPLES[i] if "example" in kind else None,
            "example_source": "RuMedTop3-train" if "example" in kind else None,
            "sex": "female", "age": 30 + i, "location": "city", "marital_status": "single",
            "smoking": False, "system_prompt": "s", "user_prompt": f"u{i}", "completion_prompt": f"c{i}",
            "seed": 0,
        })
    return pd.DataFrame(rows, columns=list(TASK_COLUMNS))


def make_store(path: Path, responses: list[str], finish: list[str] | None = None,
               tasks: pd.DataFrame | None = None) -> Path:
    """A store whose records carry their task's fingerprint (``tasks``: default :func:`make_tasks`)."""
    prints = artefacts.task_fingerprints(make_tasks() if tasks is None else tasks)
    with path.open("w", encoding="utf-8") as handle:
        for i, response in enumerate(responses):
            record = {name: None for name in STORE_FIELDS}
            record.update(task_id=f"t{i:06d}", model_id="tiny-lm", prompt=f"prompt {i}",
                          response=response, finish_reason=finish[i] if finish else "stop",
                          task_fingerprint=prints[f"t{i:06d}"])
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
