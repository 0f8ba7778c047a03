"""Planning a run: read the parameter file, apply ``--set``, check every value, before anything runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from medsyn_utils.core.checks import read_yaml
from medsyn_utils.core.errors import ParameterError
from medsyn_utils.core.paths import folder_problem, project_root
from medsyn_utils.pipeline.contract import config_for
from medsyn_utils.pipeline.parameters import NotebookParameter, check_value, declared_parameters
from medsyn_utils.pipeline.stages import RUNNER_SET, STAGE_BY_NAME, STAGES, TOP_LEVEL_KEYS, Stage


@dataclass
class RunPlan:
    """A validated run: which stages, with which parameters, into which folder."""

    root: Path
    params_file: Path
    run_dir: Path
    selected: list[Stage]
    parameters: dict[str, dict[str, Any]]  # stage → resolved parameters (run_dir included)
    overrides: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a parameter file and check its top-level layout (not yet the notebooks' names)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise ParameterError(f"parameter file {path} does not exist (a relative path is read "
                             f"from the current folder): pass one of params/*.yaml to --params")
    config = read_yaml(path)
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ParameterError(f"parameter file {path} must be a mapping of stage names to "
                             f"parameters, got {type(config).__name__}")
    valid = (*TOP_LEVEL_KEYS, *STAGE_BY_NAME)
    for key, value in config.items():
        if key not in valid:
            raise ParameterError(f"{path}: unknown top-level key {key!r}; valid keys: "
                                 f"{', '.join(valid)}")
        if key in ("common", *STAGE_BY_NAME):
            if value is None:
                config[key] = {}
            elif not isinstance(value, dict):
                raise ParameterError(f"{path}: {key} must be a mapping of parameter names to "
                                     f"values, got {type(value).__name__}")
    return config


def apply_overrides(config: dict[str, Any], overrides: Iterable[str]
                    ) -> dict[tuple[str, str], str]:
    """Apply ``--set section.key=value`` / ``--set key=value`` (common) in place.

    Returns the raw text of each override, so a ``str`` parameter keeps ``--set x=007`` as typed.
    """
    import yaml

    raw: dict[tuple[str, str], str] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"--set {item!r} must look like stage.name=value or "
                                 f"name=value (common)")
        section, dot, name = key.partition(".")
        if not dot:
            section, name = "common", key
        if section == "stages" or name in ("stages",):
            raise ParameterError(f"--set {item!r}: choose stages with --only, not --set")
        if name in RUNNER_SET or section == "run_dir":
            raise ParameterError(f"--set {item!r}: the run folder is chosen with --out")
        if section not in ("common", *STAGE_BY_NAME):
            raise ParameterError(f"--set {item!r}: unknown section {section!r}; valid: common, "
                                 f"{', '.join(STAGE_BY_NAME)}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        config.setdefault(section, {})[name] = value
        raw[(section, name)] = text
    return raw


def _split_stage_names(values: Iterable[str], what: str) -> list[str]:
    names = [name.strip() for value in values for name in str(value).split(",") if name.strip()]
    if not names:
        raise ParameterError(f"{what}: no stage selected ({', '.join(repr(str(v)) for v in values)})"
                             f"; name one or more of {', '.join(STAGE_BY_NAME)}")
    for name in names:
        if name not in STAGE_BY_NAME:
            raise ParameterError(f"{what}: unknown stage {name!r}; valid stages: "
                                 f"{', '.join(STAGE_BY_NAME)}")
    return names


def _valid_keys(declared: Mapping[str, NotebookParameter]) -> str:
    return ", ".join(name for name in declared if name not in RUNNER_SET) or "(none)"


def _project(root: str | os.PathLike[str] | None) -> Path:
    """The project folder holding ``notebooks/``; an error when it holds none of the stages'."""
    root_path = Path(root).expanduser().absolute() if root is not None else project_root()
    if root_path is None:
        raise ParameterError("no project checkout found (a folder with pyproject.toml and "
                             "notebooks/): run from the checkout or pass --root")
    root_path = root_path.resolve()
    if not any((root_path / stage.notebook).is_file() for stage in STAGES):
        raise ParameterError(f"--root {root_path} holds none of the stage notebooks "
                             f"({STAGES[0].notebook}, ...): pass the project folder that has "
                             f"notebooks/")
    return root_path


def _stage_names(config: Mapping[str, Any], only: list[str], label: str) -> list[str]:
    if only:
        return _split_stage_names(only, "--only")
    if "stages" not in config:
        return [stage.name for stage in STAGES if stage.default]
    listed = config["stages"]
    if not isinstance(listed, list):
        raise ParameterError(f"{label}: stages must be a list of stage names, e.g. "
                             f"[{', '.join(s.name for s in STAGES if s.default)}]")
    return _split_stage_names(listed, f"{label} stages")


def check_run_folder(path: Path) -> Path:
    """The run folder can be made and written (checked before anything runs)."""
    problem = folder_problem(path)
    if problem:
        raise ParameterError(f"run folder {path}: {problem}: give another --out")
    return path


def run_folder(out: str | os.PathLike[str] | None, config: Mapping[str, Any],
               params_path: Path, root: Path) -> Path:
    """``--out`` (relative to the current folder), else the file's ``run_dir`` (relative to the
    project), else ``outputs/<file stem>`` in the project."""
    if out is not None:
        return check_run_folder(Path(out).expanduser().absolute())
    path = Path(str(config["run_dir"])) if config.get("run_dir") else \
        Path("outputs") / params_path.stem
    return check_run_folder((path if path.is_absolute() else root / path).absolute())


def _common_errors(common: Mapping[str, Any], declared: Mapping[str, Mapping[str, Any]],
                   label: str) -> list[str]:
    errors = []
    known = sorted({n for params in declared.values() for n in params if n not in RUNNER_SET})
    for name in common:
        if name in RUNNER_SET:
            errors.append(f"{label}: common.{name} is set by the runner; choose the run folder "
                          f"with --out or the top-level run_dir")
        elif not any(name in params for params in declared.values()):
            errors.append(f"{label}: unknown common parameter {name!r} (no notebook declares "
                          f"it); valid keys: {', '.join(known) or '(none)'}")
    return errors


def _stage_values(stage: Stage, config: Mapping[str, Any], params: Mapping[str, NotebookParameter],
                  cli_raw: Mapping[tuple[str, str], str], label: str,
                  errors: list[str]) -> dict[str, Any]:
    """One stage's parameters: common ones it declares, then its own; each checked."""
    values: dict[str, Any] = {}
    for name, value in config.get("common", {}).items():
        if name in params and name not in RUNNER_SET:
            values[name] = (value, cli_raw.get(("common", name)))
    for name, value in config.get(stage.name, {}).items():
        if name in RUNNER_SET:
            errors.append(f"{label}: {stage.name}.{name} is set by the runner; choose the "
                          f"run folder with --out")
        elif name not in params:
            errors.append(f"{label}: unknown parameter {stage.name}.{name} for "
                          f"{stage.notebook}; valid keys: {_valid_keys(params)} "
                          f"(see `medsyn params {stage.name}`)")
        else:
            values[name] = (value, cli_raw.get((stage.name, name)))
    checked: dict[str, Any] = {}
    contract = config_for(stage.name)
    for name, value_raw in values.items():
        value, raw = value_raw
        in_contract = contract is not None and name in contract.model_fields
        try:  # a stage's config checks ranges and choices itself, in one wording for every door
            checked[name] = check_value(params[name], value, f"{stage.name}.{name}", raw,
                                        ranges=not in_contract)
        except ParameterError as error:
            errors.append(f"{label}: {error} (see `medsyn params {stage.name}`)")
    if contract is not None:  # the stage contract: types, ranges (finite numbers), choices
        own = {name: value for name, value in checked.items() if name in contract.model_fields}
        problems = contract.problems(own)
        errors += [f"{label}: {problem}" for problem in problems]
        if not problems:
            config = contract.check(own)
            checked.update({name: getattr(config, name) for name in own})
    return checked


def plan_run(params_file: str | os.PathLike[str], *, overrides: Iterable[str] = (),
             out: str | os.PathLike[str] | None = None, only: Iterable[str] = (),
             root: str | os.PathLike[str] | None = None) -> RunPlan:
    """Read, override and check a parameter file against the notebooks, before anything runs.

    Relative ``params_file`` and ``out`` are read from the current folder, like any command.
    Raises one :class:`ParameterError` naming the key at fault and the valid keys; a selected
    stage whose notebook is missing is an error too.
    """
    root_path = _project(root)
    params_path = Path(params_file).expanduser().absolute()
    overrides = list(overrides)
    config = load_params_file(params_path)
    cli_raw = apply_overrides(config, overrides)
    label = params_path.name
    names = _stage_names(config, list(only), label)
    selected = [stage for stage in STAGES if stage.name in names]
    missing = [stage for stage in selected if not (root_path / stage.notebook).is_file()]
    if missing:
        raise ParameterError("; ".join(
            f"stage {s.name}: notebook {root_path / s.notebook} is missing" for s in missing) +
            ": restore it (git checkout -- notebooks/) or leave the stage out with --only")
    run_path = run_folder(out, config, params_path, root_path)

    declared = {stage.name: declared_parameters(root_path / stage.notebook)
                for stage in STAGES if (root_path / stage.notebook).is_file()}
    warnings: list[str] = []
    errors = _common_errors(config.get("common", {}), declared, label)
    resolved: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        params = declared.get(stage.name)
        if params is None:
            if config.get(stage.name):
                warnings.append(f"{stage.name}: {stage.notebook} is not in {root_path}, its "
                                f"parameters ({', '.join(config[stage.name])}) are not checked")
            continue
        checked = _stage_values(stage, config, params, cli_raw, label, errors)
        checked["run_dir"] = str(run_path)
        resolved[stage.name] = checked
    if errors:
        raise ParameterError("; ".join(errors))
    return RunPlan(root=root_path, params_file=params_path, run_dir=run_path, selected=selected,
                   parameters={s.name: resolved[s.name] for s in selected},
                   overrides=overrides, warnings=warnings)
