"""A few stored notes beside their prompts, for the notebook."""

from __future__ import annotations

import os

from medsyn_utils.generate.store import read_records


def preview(store_path: str | os.PathLike[str], tasks=None, n: int = 3):
    """A few stored notes beside their prompts (the user prompt where the table has one)."""
    import pandas as pd

    records = read_records(store_path)[:n]
    rows = []
    prompts = {}
    if tasks is not None and "task_id" in tasks.columns:
        for row in tasks.to_dict("records"):
            prompts[str(row["task_id"])] = row
    for record in records:
        task = prompts.get(str(record["task_id"]), {})
        shown = task.get("user_prompt") if record["decoding"].get("prompt_form") == "chat" \
            else task.get("completion_prompt")
        rows.append({"task_id": record["task_id"],
                     "prompt": shown if isinstance(shown, str) else record["prompt"],
                     "response": record["response"], "finish_reason": record["finish_reason"],
                     "completion_tokens": record["completion_tokens"]})
    return pd.DataFrame(rows, columns=["task_id", "prompt", "response", "finish_reason",
                                       "completion_tokens"])
