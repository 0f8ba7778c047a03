"""Stage 02 (notebook 02, `medsyn tasks`): the task table.

The one source of the stage's parameters (see :mod:`medsyn_utils.core.config`): add a field
here and the same name and default in the notebook's parameters cell.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from medsyn_utils.core.config import StageConfig, data_dir_field, field, run_dir_field, seed_field


class TasksConfig(StageConfig):
    """Parameters of the tasks stage."""

    STAGE: ClassVar[str] = "tasks"
    NOTEBOOK_ONLY: ClassVar[dict[str, str]] = {
        "show_per_kind": "display of the notebook", "picker_code": "the notebook's picker widget"}
    CLI_ALIASES: ClassVar[dict[str, str]] = {"run_dir": "--out", "data_dir": "MEDSYN_DATA_DIR"}

    run_dir: str = run_dir_field('run folder for tasks.parquet, tasks.csv and the stage record')
    data_dir: str = data_dir_field()
    n: int = field(200, 'number of tasks to draw', ge=1)
    seed: int = seed_field('random seed; same parameters and seed give identical files')
    codes: list[str] = field([],
        'explicit target ICD-10 codes such as J06 or J06.9; empty draws codes by code_selection')
    counts: list[int] = field([],
        'tasks per listed code, summing to n; empty splits n evenly over codes')
    code_selection: Literal['auto', 'list', 'frequency', 'allocation'] = field("auto",
        'how codes are chosen (auto is list when codes are given)')
    code_universe: Literal['rumedtop3', 'all'] = field("rumedtop3",
        'categories for frequency or allocation')
    sex_specific_share: float = field(0.15,
        "share of draws from the patient's sex-specific codes (MedSyn 0.15)", ge=0, le=1)
    temperature: float = field(10.0,
        'T of softmax(w / T) over symptom TF-IDF weights (method 10)', ge=0.001)
    k_min: int = field(2, 'fewest symptoms per task, capped by what a code has', ge=1)
    k_max: int = field(5, 'most symptoms per task', ge=1)
    symptom_sources: list[Literal['medsyn_tfidf', 'medsyn_list', 'wikimed', 'hsdn', 'rumedprime_train']] = field([],
        'graph symptom sources; empty uses all five')
    symptom_scope: Literal['leader', 'rollup'] = field("leader",
        'leader draws from a random sub-code (MedSyn), rollup from the whole category')
    mixed_weights: Literal['weighted_only', 'fill_min', 'uniform'] = field("weighted_only",
        'partly weighted symptom sets')
    prompt_mix: dict[str, float] = field({"symptoms+example": 0.5,
        "symptoms": 0.4, "code": 0.1}, 'weight per prompt kind or kind/variant')
    example_policy: Literal['full_note', 'complaints', 'full_only'] = field("full_note",
        'style example text')
    min_words: int = field(30, 'shortest style example in words', ge=0)
    splits: list[Literal['train', 'dev', 'test']] = field(["train"],
        'RuMedTop3 splits style examples come from (train keeps dev/test clean)')
    min_age: int = field(9, 'youngest patient', ge=0, le=99)
    on_missing_symptoms: Literal['error', 'fallback'] = field("error",
        'a listed code without symptoms')
    templates_dir: str = field("",
        'folder with your own copy of medsyn_utils/tasks/templates; empty uses the packaged ones')
    show_per_kind: int = field(1, 'rendered prompts shown per kind and variant', ge=0, le=10)
    picker_code: str = field("J06", 'code the re-sampling preview and picker start with')


__all__ = ["TasksConfig"]
