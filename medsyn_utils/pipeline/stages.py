"""The stage table: each stage's notebook, the stages it comes after, its inputs and outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medsyn_utils.core.paths import project_root

MANIFEST = "manifest.json"
TOP_LEVEL_KEYS = ("stages", "run_dir", "common")
RUNNER_SET = ("run_dir",)  # parameters the runner sets itself
KERNEL_NAME = "python3"
DEMO_PARAMETER = "demo"  # a notebook parameter: made-up stand-in data asked for on purpose

TASKS = ("tasks.parquet", "tasks.csv")
SCORED = ("scored.parquet", "scored.csv")


@dataclass(frozen=True)
class Input:
    """A run-folder file a stage reads: alternatives (first preferred), or a parameter's path."""

    names: tuple[str, ...]
    parameter: str | None = None  # a notebook parameter that, when set, names the file instead


@dataclass(frozen=True)
class Stage:
    """One row of the stage table: a short name, its notebook and the stages it comes after."""

    name: str
    notebook: str  # relative to the project root
    after: tuple[str, ...] = ()
    default: bool = True  # run when a parameter file does not list ``stages``
    inputs: tuple[Input, ...] = ()  # checked before the stage executes
    outputs: tuple[str, ...] = ()  # run-folder files it writes: set aside before a fresh run
    resumes: bool = False  # continues from its outputs after a crash (else they go aside first)

    @property
    def record(self) -> str:
        """Stem of the notebook: the name of its stage record ``<run>/<record>.json``."""
        return Path(self.notebook).stem


STAGES: tuple[Stage, ...] = (
    Stage("graph", "notebooks/01_graph_exploration.ipynb"),
    Stage("tasks", "notebooks/02_prompt_construction.ipynb", ("graph",), outputs=TASKS),
    Stage("generation", "notebooks/03_generation.ipynb", ("tasks",),
          inputs=(Input(TASKS, "tasks_path"),), outputs=("generations.jsonl",), resumes=True),
    Stage("scoring", "notebooks/04_bertscore_evaluation.ipynb", ("generation",),
          inputs=(Input(("generations.jsonl",), "input_path"),), outputs=SCORED),
    Stage("evaluation", "notebooks/08_evaluation.ipynb", ("scoring",),
          inputs=(Input(SCORED, "input_path"),),
          outputs=("evaluation.parquet", "evaluation.json", "evaluation.md")),
    Stage("analysis", "notebooks/05_analysis_plots.ipynb", ("scoring",),
          inputs=(Input(SCORED, "input_path"),)),
    Stage("downstream", "notebooks/06_downstream_icd.ipynb", ("scoring",),
          inputs=(Input(SCORED, "synthetic_path"),), outputs=("downstream_metrics.json",)),
    Stage("finetune", "notebooks/07_finetune.ipynb", ("scoring",), default=False),
)
STAGE_BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}


def later_stages(stage: Stage) -> list[Stage]:
    """Stages that come (directly or not) after ``stage``, in table order."""
    found: set[str] = {stage.name}
    later = []
    for other in STAGES:
        if found.intersection(other.after):
            found.add(other.name)
            later.append(other)
    return later


def find_notebook(name: str, root: Path | None = None) -> Path:
    """A notebook by stage short name (``generation``), file stem or path."""
    root = root or project_root() or Path.cwd()
    if name in STAGE_BY_NAME:
        return root / STAGE_BY_NAME[name].notebook
    for stage in STAGES:
        if name in (stage.record, Path(stage.notebook).name):
            return root / stage.notebook
    path = Path(name)
    if not path.exists() and not path.is_absolute() and (root / path).exists():
        path = root / path
    return path

