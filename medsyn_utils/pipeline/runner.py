"""``medsyn run``: the whole study as executed notebooks in one run folder, headless with papermill.

Why notebooks: each stage stays something a reader can open, re-run and change in JupyterLab;
the runner only feeds them parameters, runs them in order and records what happened.

Parameter file (YAML)::

    stages: [graph, tasks, generation, scoring, analysis, downstream]  # optional; default: all
                                                  # standard stages (finetune is off by default)
    run_dir: outputs/my-run       # optional, relative to the project; default outputs/<file stem>;
                                  # --out wins (relative to the current folder, like any command)
    common: {seed: 0, data_dir: ""}   # given to every notebook that declares the name
    generation: {batch_size: 8}   # one mapping per stage short name: that notebook's parameters

``--set generation.batch_size=4`` overrides a stage parameter, ``--set seed=1`` a common one
(values are read as YAML: ``4`` is an int, ``true`` a bool, ``[a, b]`` a list). ``run_dir`` of
every notebook is set by the runner to the run folder (absolute path).

Strict parameters. Before anything executes, each notebook's ``parameters`` cell is read with
papermill's translator (the same reading as ``papermill --help-notebook``): names, types from the
annotation (or the default's type), defaults and ``# help`` comments. An unknown key, a wrong type
or a value out of range is one :class:`~medsyn_utils.core.errors.ParameterError` listing the
valid keys (types and the rules below: :mod:`medsyn_utils.pipeline.parameters`). Ranges and
choices come from the help comment:

* ``[lo..hi]`` anywhere in the help: a number (each item of a list) must lie in ``lo..hi``
  inclusive; either end may be left out (``[1..]``, ``[..0.5]``);
* ``{a|b|c}`` anywhere in the help: the value (each item of a list) must be one of the choices.

Example: ``top_p: float = 0.95  # nucleus sampling mass [0..1]``,
``backend: str = "hf"  # generation back end {hf|openai}``.

Run folder::

    <run>/manifest.json          parameters, git, packages, data checksums, models, stages, rows
    <run>/notebooks/NN_*.ipynb   the executed notebooks (a failed one is kept, stopped at the error)
    <run>/NN_*.json              each stage's record (medsyn_utils.core.provenance.write_stage_record)
    <run>/...                    the stages' artefacts (tasks.parquet, generations.jsonl, ...)
    <run>/superseded/<time>/     outputs a fresh re-run replaced (nothing is deleted)

Incremental re-runs. A stage's fingerprint hashes its notebook file, its resolved parameters
(without ``run_dir``) and the output fingerprints of the stages it comes after (an output
fingerprint changes whenever that stage executes again). A stage whose fingerprint equals the one
recorded in the manifest of its last successful execution, and whose executed notebook and stage
record are still in the run folder, is skipped; ``--force`` re-runs the selected stages. Changing generation's
parameters therefore re-runs generation, scoring, analysis and downstream, not graph or tasks.
Code changes inside ``medsyn_utils`` are not part of the fingerprint: use ``--force`` after them.
A stage that resumes (generation skips tasks already in ``generations.jsonl``) finds its
earlier outputs in place and continues after a crash; ``--force``, a changed fingerprint, or a
stage that does not resume first moves the stage's own earlier outputs to
``<run>/superseded/<time>/``, so it starts from nothing and nothing is overwritten. Notes never meet tasks they were not written for: the SHA-256 of each input
file is recorded when a stage starts, and when it differs the next time (a new ``tasks.parquet``,
even after a run interrupted before any stage record was written), or the store holds notes whose
task fingerprint the table lacks, the stage's outputs and those of every later stage are set
aside; a tasks stage that writes a different table sends the old table, its notes and scores to
the same ``superseded/<time>/`` folder.

Missing inputs and notebooks. Before anything runs, each selected stage's inputs must be in the
run folder (or made by a stage that runs before it): ``run --only scoring`` on a fresh folder
stops with "no generations.jsonl in RUN: run the generation stage first ...". A stage whose
parameters say ``demo: true`` asked for made-up stand-in data on purpose: it is not checked, and
the manifest and its entry say ``demo: true``. A selected stage whose notebook is missing, or a
``--root`` holding no stage notebooks, is an error.

Failures. A failing cell stops the run: one line names the notebook, the cell (1-based index in
the source notebook and its first line) and the error; the partly executed notebook is kept;
the exit status is 1 (2 for parameter, missing-input and set-up errors, before anything ran).

Modules: ``stages`` (the stage table), ``parameters`` (the parameter contract), ``planning``
(parameter files into a checked plan), ``fingerprints``, ``kernel``, ``records`` (stage records,
manifest, set-aside), ``failures``, ``execution`` (running a plan). This module gathers their
public names.
"""

from __future__ import annotations

from medsyn_utils.pipeline.execution import check_inputs, run_plan
from medsyn_utils.pipeline.failures import StageFailure, describe_failure
from medsyn_utils.pipeline.fingerprints import file_sha256, output_fingerprint, stage_fingerprint
from medsyn_utils.pipeline.kernel import engine_options, ensure_python_kernel
from medsyn_utils.pipeline.parameters import (NotebookParameter, _literal, check_value,
                                              format_parameters, declared_parameters, parse_help,
                                              source_parameters)
from medsyn_utils.pipeline.planning import (RunPlan, apply_overrides, load_params_file,
                                            plan_run)
from medsyn_utils.pipeline.records import (count_rows, own_outputs, read_stage_record,
                                           set_aside_outputs)
from medsyn_utils.pipeline.stages import (DEMO_PARAMETER, KERNEL_NAME, MANIFEST, RUNNER_SET,
                                          STAGE_BY_NAME, STAGES, Input, Stage, find_notebook)

__all__ = [
    "DEMO_PARAMETER", "KERNEL_NAME", "MANIFEST", "RUNNER_SET", "STAGES", "STAGE_BY_NAME", "Input",
    "NotebookParameter", "RunPlan", "Stage", "StageFailure", "_literal", "apply_overrides",
    "check_inputs", "check_value", "count_rows", "describe_failure", "engine_options",
    "ensure_python_kernel", "file_sha256", "find_notebook", "format_parameters",
    "load_params_file", "declared_parameters", "output_fingerprint", "own_outputs",
    "parse_help", "plan_run", "read_stage_record", "run_plan", "set_aside_outputs",
    "source_parameters", "stage_fingerprint",
]
