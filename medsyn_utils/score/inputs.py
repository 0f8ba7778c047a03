"""Loading what stage 04 scores (``generations.jsonl``) and what the later stages read
(``scored.parquet``/``scored.csv``).

The kit's run-folder loaders all have one shape: ``read_<file>(run_dir, path="", *, demo=False,
...) -> (table, source)``, ``source`` one line saying where the table came from. A missing input
is the one error of :func:`~medsyn_utils.core.artefacts.require_input` naming the stage that makes
it; the demo stand-ins (:func:`~medsyn_utils.score.stage.demo_notes`,
:func:`~medsyn_utils.score.demo.schema_shaped_dataset`) are built only with ``demo=True``. The
others: :func:`medsyn_utils.tasks.inputs.read_tasks` and
:func:`medsyn_utils.core.artefacts.read_stage_record`.
"""

from __future__ import annotations

import os

import pandas as pd

from medsyn_utils.core.artefacts import read_scored_table, require_input
from medsyn_utils.core.paths import resolve
from medsyn_utils.score.demo import DEMO_MARK, schema_shaped_dataset
from medsyn_utils.score.layout import ScoringInput, load_scoring_input
from medsyn_utils.score.stage import DEMO_LABEL, demo_notes


def read_generations(run_dir: str | os.PathLike[str], input_path: str = "", *,
                     demo: bool = False, demo_size: int = 8, seed: int = 0,
                     tasks: str | os.PathLike[str] | None = None) -> ScoringInput:
    """What stage 04 scores: ``input_path``, else the run folder's ``generations.jsonl`` joined
    with its task table. Without generations: an error naming the generation stage, unless
    ``demo`` — then ``demo_size`` REAL train notes, labelled :data:`DEMO_LABEL` in the source.

    The result unpacks as ``(table, source)`` and also carries the notes left out on the way in
    (failed generations, lines that are not UTF-8) for the stage record.
    """
    run = resolve(run_dir)
    if input_path:
        return load_scoring_input(resolve(input_path), tasks)
    store = run / "generations.jsonl"
    if store.is_file() or not demo:
        return load_scoring_input(require_input(run, "generations.jsonl"), tasks)
    return ScoringInput(demo_notes(demo_size, seed),
                        f"{DEMO_LABEL}: no {store}, so {demo_size} REAL RuMedTop3 train notes are "
                        f"scored in place of generated ones (demo: true)")


def read_scored(run_dir: str | os.PathLike[str], input_path: str = "", *, demo: bool = False,
                n_rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """The scored table a stage after scoring works on, and a line saying where it came from.

    ``input_path`` given: that file (an error if it is missing). Empty: the run folder's
    ``scored.parquet`` (or ``scored.csv``); when neither is there, a one-line error naming the
    scoring stage. ``demo`` set: the demo table of :func:`schema_shaped_dataset`, announced as
    DEMO DATA, in place of the run folder's table even when there is one (so that the figures and
    records marked demo never show real scores; the other loaders read a present input first).
    """
    if input_path:
        path = resolve(input_path)
        return read_scored_table(path), f"file {path}"
    folder = resolve(run_dir)
    if not demo:
        path = require_input(folder, "scored.parquet", "scored.csv")
        return read_scored_table(path), f"scoring stage output {path}"
    frame = schema_shaped_dataset(n_rows, seed, extra_columns=True)
    return frame, (f"{DEMO_MARK}: {n_rows} rows stitched from real RuMedTop3 train notes with random "
                   f"scores, not model output (demo: true)")
