"""Base against fine-tuned model on held-out tasks, scored by the same BERTScore stage.

The comparison tasks take their style examples from a split the instruction export leaves out
(dev by default: the export holds train visits only), and every task is a ``symptoms+example``
task, so ``anamnesis_precision`` measures style transfer from an example the fine-tuned model has
never seen, not a memorised training note. :func:`held_out_tasks` refuses a comparison example that
the export holds. The comparison tasks and notes stay in the fine-tuning folder: no training set
and no later stage reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.generate.stage import generate_store
from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5
from medsyn_utils.score.filter import PAPER_THRESHOLDS
from medsyn_utils.score.layout import read_scoring_input
from medsyn_utils.score.scorer import NoteScorer
from medsyn_utils.score.stage import score_table
from medsyn_utils.tasks.build import build_task_table
from medsyn_utils.tasks.table import write_task_table

HELD_OUT_SPLITS: tuple[str, ...] = ("dev",)  # style examples of the comparison tasks
HELD_OUT_MIX: dict[str, float] = {"symptoms+example": 1.0}  # every task has a style example
EVAL_FOLDER = "eval"


def held_out_tasks(n_tasks: int, seed: int, training_visit_ids: Iterable[str],
                   task_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """``n_tasks`` comparison tasks whose style examples are none of ``training_visit_ids``.

    ``training_visit_ids``: every visit the instruction export holds
    (:func:`medsyn_utils.finetune.ift.card_visit_ids`). ``task_options`` override the defaults
    (dev-split examples, symptoms+example prompts); an example found in the export is an error.
    """
    options = {"splits": list(HELD_OUT_SPLITS), "prompt_mix": dict(HELD_OUT_MIX),
               **(task_options or {})}
    table = build_task_table(n_tasks, seed, **options)
    used = {str(v) for v in table["example_visit_id"].dropna()}
    overlap = sorted(used & {str(v) for v in training_visit_ids})
    if overlap:
        raise ParameterError(
            f"{len(overlap)} comparison style example(s) are in the instruction export (first: "
            f"{overlap[0]}): take comparison examples from a split the export leaves out "
            f"(splits={options['splits']}; the default dev split is held out)")
    return table


def compare_base_and_tuned(base_model: str, adapter_dir: str | Path, out_dir: str | Path, *,
                           training_visit_ids: Iterable[str], n_tasks: int = 4, seed: int = 1,
                           max_new_tokens: int = 64, batch_size: int = 4,
                           encoder: str = EMBEDDED_E5, layer: int = DEFAULT_LAYER,
                           thresholds: Mapping[str, float] = PAPER_THRESHOLDS,
                           device: str = "auto", task_options: dict[str, Any] | None = None
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate held-out tasks with the base and the fine-tuned model and score both.

    The tasks (:func:`held_out_tasks`, their own ``seed``) and the notes go to
    ``<out_dir>/eval/``. Returns ``(summary, scored)``: mean scores and pass rate per model, and
    the scored notes (with ``example_visit_id``, so a reader can check they are held out).
    """
    table = held_out_tasks(n_tasks, seed, training_visit_ids, task_options)
    folder = Path(out_dir) / EVAL_FOLDER
    tasks_path = write_task_table(table, folder)["parquet"]
    scorer = NoteScorer(encoder, layer)
    scored = []
    for label, adapter in (("base", None), ("fine-tuned", str(adapter_dir))):
        store_path = folder / f"{label}.jsonl"
        generate_store(table, store_path, model=base_model, adapter=adapter,
                       batch_size=batch_size, max_new_tokens=max_new_tokens,
                       temperature=0.0, seed=seed, device=device, progress=False)
        published = read_scoring_input(store_path, tasks_path)
        frame = score_table(published, scorer, recall_threshold=thresholds["symptoms_recall"],
                            precision_threshold=thresholds["anamnesis_precision"], progress=False)
        scored.append(frame.assign(model=label))
    scored_all = pd.concat(scored, ignore_index=True)
    summary = (scored_all.groupby("model", sort=False)
               .agg(notes=("response", "size"), symptoms_recall=("symptoms_recall", "mean"),
                    anamnesis_precision=("anamnesis_precision", "mean"),
                    passed=("passed_filter", "mean"))
               .reset_index())
    return summary, scored_all
