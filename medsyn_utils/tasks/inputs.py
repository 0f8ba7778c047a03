"""Loading the task table a run's later stages start from (``tasks.parquet``/``tasks.csv``).

One of the kit's run-folder loaders, all of one shape: ``read_<file>(run_dir, path="", *,
demo=False, ...) -> (table, source)``, where ``source`` is one line saying where the table came
from. A missing input is the one error of :func:`~medsyn_utils.core.artefacts.require_input`
naming the stage that makes it; made-up stand-ins only with ``demo=True``. The others:
:func:`medsyn_utils.score.inputs.read_generations`, :func:`medsyn_utils.score.inputs.read_scored`
and :func:`medsyn_utils.core.artefacts.read_stage_record`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from medsyn_utils.core.artefacts import require_input
from medsyn_utils.core.errors import InputTableError
from medsyn_utils.core.paths import resolve
from medsyn_utils.tasks.build import build_task_table
from medsyn_utils.tasks.table import load_task_table, write_task_table


def read_tasks(run_dir: str | os.PathLike[str], tasks_path: str = "", *, demo: bool = False,
               n: int = 4, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """The task table stage 03 works on and a line saying where it came from.

    ``tasks_path`` given: that file (an error if it is missing). Empty: the run folder's
    ``tasks.parquet`` (or ``tasks.csv``); when neither is there, a one-line error naming the tasks
    stage, unless ``demo`` is set: then a tiny table is built by stage 02's builder, saved into the
    run folder as stage 02 would, and announced as DEMO DATA.
    """
    folder = resolve(run_dir)
    if tasks_path:
        path = resolve(tasks_path)
        if not path.is_file():
            raise InputTableError(f"task table {tasks_path} does not exist: run the tasks stage "
                                  f"(notebook 02) first or set tasks_path=''")
        return load_task_table(path), f"file {path}"
    if not demo or any((folder / name).is_file() for name in ("tasks.parquet", "tasks.csv")):
        path = require_input(folder, "tasks.parquet", "tasks.csv")
        return load_task_table(path), f"tasks stage output {path}"
    table = build_task_table(n=n, seed=seed)
    path = Path(write_task_table(table, folder)["parquet"])
    return table, (f"DEMO DATA: no task table in {folder}, built a tiny one of {n} tasks at {path} "
                   f"(run 02 for yours; demo: true)")
