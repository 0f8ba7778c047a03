"""Hand-made task tables shared by the generation tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medsyn_utils.generate.store import read_records
from medsyn_utils.testing.tiny import SENTENCES


def make_tasks(n: int = 7) -> pd.DataFrame:
    """A hand-made task table with prompts of different lengths (both prompt forms)."""
    rows = []
    for i in range(n):
        text = " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(1 + i % 3))
        rows.append({"task_id": f"t{i:03d}", "system_prompt": "Ты врач. Пиши кратко.",
                     "user_prompt": f"Жалобы: {text[: 12 + 11 * i]}",
                     "completion_prompt": f"Пациент 1. {text[: 10 + 13 * i]}\n\nПациент 2."})
    return pd.DataFrame(rows)


def responses(path: Path) -> dict[str, str]:
    return {r["task_id"]: r["response"] for r in read_records(path)}
