"""``medsyn run``: the whole study as executed notebooks in one run folder, headless with papermill.

Why notebooks: each stage stays something a reader can open, re-run and change in JupyterLab;
the runner only feeds them parameters, runs them in order and records what happened.

Parameter file (YAML)::

    stages: [graph, tasks, generation, scoring, analysis, downstream]  # optional; default: all
                                                  # standard stages (finetune is off by default)
    run_dir: outputs/my-run       # optional; default outputs/<file stem>; --out wins
    common: {seed: 0, data_dir: ""}   # given to every notebook that declares the name
    generation: {batch_size: 8}   # one mapping per stage short name: that notebook's parameters

``--set generation.batch_size=4`` overrides a stage parameter, ``--set seed=1`` a common one
(values are read as YAML: ``4`` is an int, ``true`` a bool, ``[a, b]`` a list). ``run_dir`` of
every notebook is set by the runner to the run folder (absolute path).

Strict parameters. Before anything executes, each notebook's ``parameters`` cell is read with
papermill's translator (the same reading as ``papermill --help-notebook``): names, types from the
annotation (or the default's type), defaults and ``# help`` comments. An unknown key, a wrong type
or a value out of range is one :class:`~medsyn_utils.errors.ParameterError` listing the valid keys.
Types checked: ``int``, ``float`` (an int or a number written as text such as ``2e-5`` is
accepted), ``str``, ``bool``, ``list``/``list[T]``, ``dict``, ``Optional[T]``; ``None`` is
accepted where the default is ``None``. Ranges and choices come from the help comment:

* ``[lo..hi]`` anywhere in the help: a number (each item of a list) must lie in ``lo..hi``
  inclusive; either end may be left out (``[1..]``, ``[..0.5]``);
* ``{a|b|c}`` anywhere in the help: the value (each item of a list) must be one of the choices.

Example: ``top_p: float = 0.95  # nucleus sampling mass [0..1]``,
``backend: str = "hf"  # generation back end {hf|openai}``.

Run folder::

    <run>/manifest.json          parameters, git, packages, data checksums, models, stages, rows
    <run>/notebooks/NN_*.ipynb   the executed notebooks (a failed one is kept, stopped at the error)
    <run>/NN_*.json              each stage's record (medsyn_utils.provenance.write_stage_record)
    <run>/...                    the stages' artefacts (tasks.parquet, generations.jsonl, ...)
    <run>/superseded/<time>/     outputs a --force re-run replaced

Incremental re-runs. A stage's fingerprint hashes its notebook file, its resolved parameters
(without ``run_dir``) and the output fingerprints of the stages it comes after (an output
fingerprint changes whenever that stage executes again). A stage whose fingerprint equals the one
recorded in the manifest of its last successful execution, and whose executed notebook and stage
record are still in the run folder, is skipped; ``--force`` re-runs the selected stages. Changing generation's
parameters therefore re-runs generation, scoring, analysis and downstream, not graph or tasks.
Code changes inside ``medsyn_utils`` are not part of the fingerprint: use ``--force`` after them.
A re-executed notebook finds its earlier outputs in place, so a stage that resumes (generation
skips tasks already in ``generations.jsonl``) continues after a crash; ``--force``, or a changed
fingerprint, first moves the stage's own earlier outputs to ``<run>/superseded/<time>/``, so it
starts from nothing (new tasks under the same ids never meet old notes).

Failures. A failing cell stops the run: one line names the notebook, the cell (1-based index in
the source notebook and its first line) and the error; the partly executed notebook is kept;
the exit status is 1 (2 for parameter and set-up errors, before anything ran).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from medsyn_utils.core.errors import MedsynError, ParameterError
from medsyn_utils.core.paths import project_root
from medsyn_utils.core.provenance import git_state, now_iso, package_versions, write_json_atomic

MANIFEST = "manifest.json"
TOP_LEVEL_KEYS = ("stages", "run_dir", "common")
RUNNER_SET = ("run_dir",)  # parameters the runner sets itself
KERNEL_NAME = "python3"


@dataclass(frozen=True)
class Stage:
    """One row of the stage table: a short name, its notebook and the stages it comes after."""

    name: str
    notebook: str  # relative to the project root
    after: tuple[str, ...] = ()
    default: bool = True  # run when a parameter file does not list ``stages``

    @property
    def record(self) -> str:
        """Stem of the notebook: the name of its stage record ``<run>/<record>.json``."""
        return Path(self.notebook).stem


STAGES: tuple[Stage, ...] = (
    Stage("graph", "notebooks/01_graph_exploration.ipynb"),
    Stage("tasks", "notebooks/02_prompt_construction.ipynb", ("graph",)),
    Stage("generation", "notebooks/03_generation.ipynb", ("tasks",)),
    Stage("scoring", "notebooks/04_bertscore_evaluation.ipynb", ("generation",)),
    Stage("analysis", "notebooks/05_analysis_plots.ipynb", ("scoring",)),
    Stage("downstream", "notebooks/06_downstream_icd.ipynb", ("scoring",)),
    Stage("finetune", "notebooks/07_finetune.ipynb", ("scoring",), default=False),
)
STAGE_BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}


# --------------------------------------------------------------------------- notebook parameters

_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"\[\s*(?P<low>{_NUMBER})?\s*\.\.\s*(?P<high>{_NUMBER})?\s*\]")
_CHOICES = re.compile(r"\{(?P<body>[^{}|]+(?:\|[^{}|]+)+)\}")
_SIMPLE_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool,
                                  "list": list, "dict": dict, "tuple": tuple}


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a notebook's ``parameters`` cell, as papermill reads it."""

    name: str
    type: str  # the annotation as written (``""`` when there is none)
    default_text: str
    help: str
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    read_by_papermill: bool = True

    @property
    def type_label(self) -> str:
        """The declared type, else the default's type, else ``any``."""
        if self.type:
            return self.type
        if self.default is not None:
            return type(self.default).__name__
        return "any"


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _choice_value(token: str) -> Any:
    token = token.strip()
    value = _literal(token)
    return token if value is None and token != "None" else value


def parse_help(help_text: str) -> tuple[float | None, float | None, tuple[Any, ...] | None]:
    """Range ``[lo..hi]`` and choices ``{a|b|c}`` declared in a ``# help`` comment."""
    low = high = None
    match = _RANGE.search(help_text)
    if match:
        low = float(match["low"]) if match["low"] is not None else None
        high = float(match["high"]) if match["high"] is not None else None
    choices = None
    match = _CHOICES.search(help_text)
    if match:
        choices = tuple(_choice_value(token) for token in match["body"].split("|"))
    return low, high, choices


def _read_notebook(path: Path):
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        raise ParameterError(f"notebook {path} does not exist: pass a stage name "
                             f"({', '.join(STAGE_BY_NAME)}) or a notebook path") from None
    except Exception as error:  # nbformat raises several JSON/validation errors
        raise ParameterError(f"notebook {path} cannot be read ({type(error).__name__}: {error}): "
                             f"restore it from git") from error


def parameters_cell_index(nb: Any) -> int:
    """Index of the first cell tagged ``parameters`` (-1 when there is none)."""
    for index, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return index
    return -1


def source_parameters(source: str) -> list[tuple[str, str, str, str]]:
    """``(name, annotation, default text, help)`` of each simple assignment, read with ``ast``.

    The cross-check of papermill's line-based reading: papermill drops a line whose help
    comment contains ``=``, and the runner still wants to know that name.
    """
    import io
    import tokenize

    try:
        tree = ast.parse(source)
        comments = {tok.start[0]: tok.string.lstrip("#").strip()
                    for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                    if tok.type == tokenize.COMMENT}
    except (SyntaxError, tokenize.TokenError, IndentationError):
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            name, annotation = node.target.id, ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            name, annotation = node.targets[0].id, ""
        else:
            continue
        default = ast.get_source_segment(source, node.value) or ast.unparse(node.value)
        found.append((name, annotation, default, comments.get(node.end_lineno or 0, "")))
    return found


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, NotebookParameter]:
    """A notebook's declared parameters: names, types, defaults, help, range and choices.

    Read with papermill's Python translator (what ``papermill --help-notebook`` and
    ``papermill.inspect_notebook`` show), so the runner and papermill agree on the names; an
    assignment papermill cannot read (see :func:`source_parameters`) is still listed, with
    ``read_by_papermill=False`` (the notebook hygiene test fails on it).
    """
    import logging

    from papermill.translators import papermill_translators

    path = Path(path)
    nb = _read_notebook(path)
    index = parameters_cell_index(nb)
    if index < 0:
        raise ParameterError(f"notebook {path} has no cell tagged 'parameters': tag its "
                             f"parameters cell so the runner can check and inject parameters")
    kernel = nb.metadata.get("kernelspec", {}).get("name", KERNEL_NAME)
    language = nb.metadata.get("kernelspec", {}).get("language", "python")
    translator = papermill_translators.find_translator(kernel, language)
    logger = logging.getLogger("papermill")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "Unable to parse line" warning: handled below
    try:
        read = [(p.name, "" if p.inferred_type_name == "None" else p.inferred_type_name,
                 p.default, p.help, True) for p in translator.inspect(nb.cells[index])]
    finally:
        logger.setLevel(level)
    by_papermill = {item[0]: item for item in read}
    ordered = [by_papermill.get(name, (name, annotation, default, help_text, False))
               for name, annotation, default, help_text in source_parameters(
                   nb.cells[index].source)]
    ordered += [item for item in read if item[0] not in {o[0] for o in ordered}]
    found: dict[str, NotebookParameter] = {}
    for name, type_name, default, help_text, by_pm in ordered:
        low, high, choices = parse_help(help_text)
        found[name] = NotebookParameter(
            name=name, type=type_name.strip(), default_text=default, help=help_text,
            default=_literal(default), low=low, high=high, choices=choices,
            read_by_papermill=by_pm)
    return found


def _type_parts(type_text: str) -> tuple[str, str, bool]:
    """``(outer, inner, optional)`` of an annotation such as ``Optional[list[int]]``."""
    text = type_text.replace(" ", "")
    optional = False
    match = re.fullmatch(r"(?:typing\.)?Optional\[(.+)\]", text)
    if match:
        text, optional = match[1], True
    match = re.fullmatch(r"(\w+)\[(.+)\]", text)
    if match:
        return match[1].lower(), match[2], optional
    return text.lower(), "", optional


def _check_type(value: Any, type_text: str, where: str, from_cli: str | None) -> Any:
    outer, inner, optional = _type_parts(type_text)
    if value is None and optional:
        return None
    expected = _SIMPLE_TYPES.get(outer)
    if expected is None:  # an annotation the runner does not know: let the notebook decide
        return value
    if expected is str and from_cli is not None:
        return from_cli  # --set name=123 for a str parameter means the text "123"
    if expected is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 2e-5 as text
        except ValueError:
            pass
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        value = tuple(value)
    ok = isinstance(value, expected) and not (expected in (int, float) and isinstance(value, bool))
    if not ok:
        raise ParameterError(f"{where} must be {type_text}, got {type(value).__name__} "
                             f"{value!r}")
    if inner and expected in (list, tuple):
        return type(value)(_check_type(item, inner, f"{where}[{i}]", None)
                           for i, item in enumerate(value))
    return value


def _check_range(value: Any, param: NotebookParameter, where: str) -> None:
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if param.choices is not None and item not in param.choices and \
                str(item) not in {str(c) for c in param.choices}:
            raise ParameterError(f"{where}={item!r} is not one of "
                                 f"{{{'|'.join(str(c) for c in param.choices)}}}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if (param.low is not None and item < param.low) or \
                    (param.high is not None and item > param.high):
                low = "" if param.low is None else f"{param.low:g}"
                high = "" if param.high is None else f"{param.high:g}"
                raise ParameterError(f"{where}={item!r} is out of range [{low}..{high}]")


def check_value(param: NotebookParameter, value: Any, where: str,
                from_cli: str | None = None) -> Any:
    """Check one value against a declared parameter; return it converted (int → float, ...)."""
    if value is None and param.default is None and param.default_text.strip() == "None":
        return None
    type_text = param.type or (type(param.default).__name__ if param.default is not None else "")
    if type_text:
        value = _check_type(value, type_text, where, from_cli)
    _check_range(value, param, where)
    return value


# --------------------------------------------------------------------------- parameter files

@dataclass
class RunPlan:
    """A validated run: which stages, with which parameters, into which folder."""

    root: Path
    params_file: Path
    run_dir: Path
    selected: list[Stage]
    parameters: dict[str, dict[str, Any]]  # stage → resolved parameters (run_dir included)
    missing: list[Stage]  # selected stages whose notebook is not there
    overrides: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def load_params_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a parameter file and check its top-level layout (not yet the notebooks' names)."""
    import yaml

    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParameterError(f"parameter file {path} does not exist: pass one of params/*.yaml "
                             f"to --params") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ParameterError(f"parameter file {path}{line} is not valid YAML: "
                             f"{getattr(error, 'problem', error)}") from None
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
    for name in names:
        if name not in STAGE_BY_NAME:
            raise ParameterError(f"{what}: unknown stage {name!r}; valid stages: "
                                 f"{', '.join(STAGE_BY_NAME)}")
    return names


def _valid_keys(declared: Mapping[str, NotebookParameter]) -> str:
    return ", ".join(name for name in declared if name not in RUNNER_SET) or "(none)"


def plan_run(params_file: str | os.PathLike[str], *, overrides: Iterable[str] = (),
             out: str | os.PathLike[str] | None = None, only: Iterable[str] = (),
             root: str | os.PathLike[str] | None = None) -> RunPlan:
    """Read, override and check a parameter file against the notebooks, before anything runs.

    Raises one :class:`ParameterError` naming the key at fault and the valid keys.
    """
    root_path = Path(root) if root is not None else project_root()
    if root_path is None:
        raise ParameterError("no project checkout found (a folder with pyproject.toml and "
                             "notebooks/): run from the checkout or pass --root")
    root_path = root_path.resolve()
    params_path = Path(params_file)
    if not params_path.is_absolute() and not params_path.exists():
        params_path = root_path / params_path
    params_path = params_path.absolute()
    overrides = list(overrides)
    config = load_params_file(params_path)
    cli_raw = apply_overrides(config, overrides)
    label = params_path.name

    if "stages" in config:
        listed = config["stages"]
        if not isinstance(listed, list):
            raise ParameterError(f"{label}: stages must be a list of stage names, e.g. "
                                 f"[{', '.join(s.name for s in STAGES if s.default)}]")
        names = _split_stage_names(listed, f"{label} stages")
    else:
        names = [stage.name for stage in STAGES if stage.default]
    only = list(only)
    if only:
        names = _split_stage_names(only, "--only")
    selected = [stage for stage in STAGES if stage.name in names]

    if out is not None:
        run_path = Path(out)
    elif config.get("run_dir"):
        run_path = Path(str(config["run_dir"]))
    else:
        run_path = Path("outputs") / params_path.stem
    run_path = (run_path if run_path.is_absolute() else root_path / run_path).resolve()

    declared: dict[str, dict[str, NotebookParameter]] = {}
    for stage in STAGES:
        notebook = root_path / stage.notebook
        if notebook.is_file():
            declared[stage.name] = notebook_parameters(notebook)
    warnings: list[str] = []
    errors: list[str] = []

    common = config.get("common", {})
    for name in common:
        if name in RUNNER_SET:
            errors.append(f"{label}: common.{name} is set by the runner; choose the run folder "
                          f"with --out or the top-level run_dir")
            continue
        if not any(name in params for params in declared.values()):
            known = sorted({n for params in declared.values() for n in params
                            if n not in RUNNER_SET})
            if len(declared) == len(STAGES):
                errors.append(f"{label}: unknown common parameter {name!r} (no notebook declares "
                              f"it); valid keys: {', '.join(known) or '(none)'}")
            else:
                warnings.append(f"common.{name} is declared by no notebook present yet")

    resolved: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        given = config.get(stage.name, {})
        params = declared.get(stage.name)
        if params is None:
            if given:
                warnings.append(f"{stage.name}: {stage.notebook} is not there yet, its "
                                f"parameters ({', '.join(given)}) are not checked")
            continue
        values: dict[str, Any] = {}
        for name, value in common.items():
            if name in params and name not in RUNNER_SET:
                values[name] = (value, cli_raw.get(("common", name)))
        for name, value in given.items():
            if name in RUNNER_SET:
                errors.append(f"{label}: {stage.name}.{name} is set by the runner; choose the "
                              f"run folder with --out")
                continue
            if name not in params:
                errors.append(f"{label}: unknown parameter {stage.name}.{name} for "
                              f"{stage.notebook}; valid keys: {_valid_keys(params)} "
                              f"(see `medsyn params {stage.name}`)")
                continue
            values[name] = (value, cli_raw.get((stage.name, name)))
        checked: dict[str, Any] = {}
        for name, (value, raw) in values.items():
            try:
                checked[name] = check_value(params[name], value, f"{stage.name}.{name}", raw)
            except ParameterError as error:
                errors.append(f"{label}: {error} (see `medsyn params {stage.name}`)")
        checked["run_dir"] = str(run_path)
        resolved[stage.name] = checked
    if errors:
        raise ParameterError("; ".join(errors))
    missing = [stage for stage in selected if stage.name not in declared]
    return RunPlan(root=root_path, params_file=params_path, run_dir=run_path, selected=selected,
                   parameters={s.name: resolved[s.name] for s in selected if s.name in resolved},
                   missing=missing, overrides=overrides, warnings=warnings)


# --------------------------------------------------------------------------- the kernel

def ensure_python_kernel(name: str = KERNEL_NAME) -> dict[str, str]:
    """Make the kernel ``name`` start this interpreter, so notebooks see this environment.

    Jupyter may resolve ``python3`` to a kernelspec of another Python (one in the user's
    ``~/.local/share/jupyter``, say). When it does, a kernelspec for ``sys.executable`` is written
    into the kit's cache and put first on ``JUPYTER_PATH`` for this process and its kernels: the
    user never sets up a kernel by hand.
    """
    import importlib.util

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from medsyn_utils.core.paths import cache_dir

    if importlib.util.find_spec("ipykernel") is None:
        raise MedsynError(f"ipykernel is not installed in {sys.prefix}: install the kit with "
                          f"`pip install -e .` (it depends on ipykernel)")

    def current() -> tuple[str | None, str | None]:
        try:
            spec = KernelSpecManager().get_kernel_spec(name)
        except NoSuchKernel:
            return None, None
        return (spec.argv[0] if spec.argv else None), spec.resource_dir

    def is_ours(executable: str | None) -> bool:
        if executable is None:
            return False
        short = {"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]}
        if executable in short:  # jupyter_client replaces these with sys.executable
            return True
        # no resolve(): a venv's python is a link to the base interpreter, a different env
        return os.path.abspath(executable) == os.path.abspath(sys.executable)

    executable, where = current()
    if is_ours(executable):
        return {"name": name, "python": sys.executable, "kernelspec": str(where), "set_up": "no"}
    key = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    folder = cache_dir("jupyter", key)
    spec_dir = folder / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    from ipykernel.kernelspec import get_kernel_dict

    spec = dict(get_kernel_dict())  # ipykernel's own spec (argv, metadata) for this Python
    spec["argv"] = [sys.executable, *spec["argv"][1:]]
    spec["display_name"] = f"Python 3 ({sys.prefix})"
    write_json_atomic(spec_dir / "kernel.json", spec)
    paths = [str(folder)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    executable, where = current()
    if not is_ours(executable):
        raise MedsynError(f"kernel {name!r} still starts {executable} (from {where}), not "
                          f"{sys.executable}: remove that kernelspec or set JUPYTER_PATH")
    return {"name": name, "python": sys.executable, "kernelspec": str(where),
            "set_up": f"JUPYTER_PATH={folder}"}


# --------------------------------------------------------------------------- fingerprints

def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_json(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stage_fingerprint(notebook_sha256: str, parameters: Mapping[str, Any],
                      inputs: Mapping[str, str | None]) -> str:
    """Hash of what a stage's result depends on: notebook, parameters (not run_dir), inputs."""
    params = {k: v for k, v in parameters.items() if k not in RUNNER_SET}
    return _hash_json({"notebook": notebook_sha256, "parameters": params, "inputs": dict(inputs)})


def output_fingerprint(fingerprint: str, ended_at: str | None) -> str:
    """Identity of one execution's outputs: a re-execution (even forced) changes it."""
    return _hash_json({"fingerprint": fingerprint, "ended_at": ended_at})


# --------------------------------------------------------------------------- stage records

def count_rows(path: Path) -> int | None:
    """Rows of a table artefact (parquet, csv, jsonl, json list); ``None`` for other files."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _count_rows(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _count_rows(name: str, size: int, mtime_ns: int) -> int | None:
    path = Path(name)
    try:
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            import pyarrow.parquet as pq
            return int(pq.ParquetFile(path).metadata.num_rows)
        if suffix == ".jsonl":
            with open(path, encoding="utf-8") as handle:
                return sum(1 for line in handle if line.strip())
        if suffix == ".csv":
            import pandas as pd
            return int(len(pd.read_csv(path)))
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            return len(data) if isinstance(data, list) else None
    except (OSError, ValueError, ImportError):
        return None
    return None


def read_stage_record(run_dir: Path, stage: Stage) -> dict[str, Any] | None:
    """The stage's ``<run>/<NN_name>.json`` record, or ``None`` when the notebook wrote none."""
    path = run_dir / f"{stage.record}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _artefact_rows(run_dir: Path, artefacts: Mapping[str, Any]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, entry in artefacts.items():
        entry = dict(entry) if isinstance(entry, Mapping) else {"path": str(entry)}
        path = entry.get("path")
        if path is not None:
            full = Path(path) if Path(path).is_absolute() else run_dir / path
            entry["exists"] = full.exists()
            if entry.get("rows") is None and full.is_file():
                entry["rows"] = count_rows(full)
        rows[name] = entry
    return rows


def _artefact_path(run_dir: Path, entry: Any) -> Path | None:
    path = entry.get("path") if isinstance(entry, Mapping) else entry
    if not path:
        return None
    path = Path(str(path))
    return (path if path.is_absolute() else run_dir / path).resolve()


def set_aside_outputs(run_dir: Path, stage: Stage) -> list[str]:
    """Move a stage's own earlier outputs to ``<run>/superseded/<time>/`` before a fresh re-run.

    Some stages resume from what they find (generation skips tasks already in its store, so a
    crash loses nothing); ``--force`` means a fresh execution, and the earlier results stay for
    comparison. Files another stage's record also lists (generation lists its input
    ``tasks.parquet``) stay where they are. Returns the moved paths, relative to the run folder.
    """
    run_dir = run_dir.resolve()
    record = read_stage_record(run_dir, stage)
    if record is None:
        return []
    shared: set[Path | None] = set()
    for other in STAGES:
        if other is not stage:
            for entry in ((read_stage_record(run_dir, other) or {}).get("artefacts") or {}).values():
                shared.add(_artefact_path(run_dir, entry))
    stamp = now_iso().replace(":", "-")
    moved: list[str] = []
    for entry in (record.get("artefacts") or {}).values():
        path = _artefact_path(run_dir, entry)
        if path is None or path in shared or not path.exists():
            continue
        try:
            relative = path.relative_to(run_dir)
        except ValueError:  # outside the run folder: not the runner's to move
            continue
        if relative.parts[0] in ("notebooks", "superseded", MANIFEST):
            continue
        target = run_dir / "superseded" / stamp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved.append(str(Path("superseded") / stamp / relative))
    return moved


# --------------------------------------------------------------------------- running

@dataclass
class StageFailure:
    """What a failed notebook left: one line for the user, the details for the manifest."""

    message: str
    cell: int | None = None
    source_line: str | None = None
    error: str | None = None


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= 80 else text[:77] + "..."
    return ""


def describe_failure(stage: Stage, error: BaseException, executed: Path) -> StageFailure:
    """One message naming the notebook, the cell and the error of a failed stage."""
    from papermill.exceptions import PapermillExecutionError

    kept = f"partly executed notebook kept at {executed}"
    if isinstance(error, PapermillExecutionError):
        cell = _source_cell_number(executed, error.cell_index)
        line = _first_line(error.source or "")
        evalue = " ".join(str(error.evalue).split())
        if len(evalue) > 600:  # keep the end too: the kit's errors close with the fix
            evalue = evalue[:300] + " … " + evalue[-250:]
        what = f"{error.ename}: {evalue}" if evalue else str(error.ename)
        where = f"cell {cell}" if cell is not None else f"cell index {error.cell_index}"
        return StageFailure(
            message=f"{stage.notebook} failed in {where} (`{line}`): {what}; {kept}",
            cell=cell, source_line=line, error=what)
    what = " ".join(f"{type(error).__name__}: {error}".split())
    return StageFailure(message=f"{stage.notebook} failed: {what}; {kept}", error=what)


def _source_cell_number(executed: Path, cell_index: int) -> int | None:
    """1-based number, in the source notebook, of a cell of the executed notebook.

    papermill adds an error banner and an ``injected-parameters`` cell; neither is in the source.
    """
    try:
        import nbformat
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # the executed notebook may be unreadable after a crash
        return cell_index + 1
    def tags(cell: Any) -> list[str]:
        return cell.get("metadata", {}).get("tags", [])

    # the error index counts the cells before papermill added its banner cells
    cells = [cell for cell in nb.cells if "papermill-error-cell-tag" not in tags(cell)]
    number = 0
    for index, cell in enumerate(cells):
        if "injected-parameters" in tags(cell):
            continue
        number += 1
        if index == cell_index:
            return number
    return None


def _load_manifest(run_dir: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        return manifest if isinstance(manifest, dict) else {}
    except (OSError, ValueError):
        return {}


def _collect(run_dir: Path, stages: dict[str, dict[str, Any]]) -> tuple[dict, dict, dict]:
    """Models, artefacts and data files of every stage that has a record."""
    from medsyn_utils.core.data import checksums, registry

    models: dict[str, Any] = {}
    artefacts: dict[str, Any] = {}
    data: dict[str, Any] = {}
    known = registry()
    for name, entry in stages.items():
        stage = STAGE_BY_NAME[name]
        record = read_stage_record(run_dir, stage)
        if record is None:
            continue
        models[name] = record.get("models", {})
        artefacts[name] = _artefact_rows(run_dir, record.get("artefacts", {}))
        entry["artefacts"] = artefacts[name]
        entry["metrics"] = record.get("metrics", {})
        names = [n for n in record.get("data", {}) if n in known]
        for data_name, sha in checksums(names).items():
            data.setdefault(data_name, {"sha256": sha, "licence": known[data_name].licence,
                                        "url": known[data_name].url, "stages": []})
            data[data_name]["stages"].append(name)
    return models, artefacts, data


def _engine_options() -> dict[str, Any]:
    """Ask jupyter_client for CurveZMQ keys where it can provision them.

    Encrypted kernel sockets where the kernel supports them; it also keeps ipykernel's
    "running over TCP without encryption" warning out of every stage's output.
    """
    try:
        import zmq
        from traitlets.config import Config
    except ImportError:
        return {}
    if not zmq.has("curve"):
        return {}
    return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}


def _execute(stage: Stage, plan: RunPlan, executed: Path, progress: bool) -> None:
    import papermill

    executed.parent.mkdir(parents=True, exist_ok=True)
    notebook = plan.root / stage.notebook
    papermill.execute_notebook(
        str(notebook), str(executed), parameters=plan.parameters[stage.name],
        kernel_name=KERNEL_NAME, cwd=str(notebook.parent), progress_bar=progress,
        request_save_on_cell_execute=True, start_timeout=120, **_engine_options())


def run_plan(plan: RunPlan, *, force: bool = False, progress: bool = True,
             command: list[str] | None = None, echo=print) -> tuple[int, dict[str, Any]]:
    """Execute a checked plan; return the exit status and the manifest written.

    Writes ``<run>/manifest.json`` atomically before the first stage and after every stage,
    so an interrupted run still says what finished.
    """
    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = _load_manifest(run_dir)
    previous_stages: dict[str, Any] = previous.get("stages", {}) if isinstance(
        previous.get("stages"), dict) else {}
    kernel = ensure_python_kernel()
    started = time.monotonic()
    manifest: dict[str, Any] = {
        "kit": {"name": "medsyn-utils", "version": package_versions(("medsyn-utils",)).get(
            "medsyn-utils")},
        "command": command if command is not None else ["medsyn", "run"],
        "params_file": str(plan.params_file),
        "params_sha256": file_sha256(plan.params_file),
        "overrides": plan.overrides,
        "run_dir": str(run_dir),
        "root": str(plan.root),
        "started_at": now_iso(), "ended_at": None, "duration_s": None,
        "status": "running", "exit_status": None, "error": None,
        "selected_stages": [stage.name for stage in plan.selected],
        "force": force,
        "parameters": plan.parameters,
        "git": git_state(plan.root),
        "packages": package_versions(),
        "python": sys.executable,
        "kernel": kernel,
        "environment": {k: os.environ.get(k) for k in
                        ("MEDSYN_DATA_DIR", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES")},
        "warnings": plan.warnings,
        "stages": {},
    }
    stages: dict[str, dict[str, Any]] = manifest["stages"]
    for name, entry in previous_stages.items():  # stages not run now keep their last state
        if name in STAGE_BY_NAME and isinstance(entry, dict):
            stages[name] = dict(entry, status_now="not selected")

    def save() -> None:
        models, artefacts, data = _collect(run_dir, stages)
        manifest.update(models=models, artefacts=artefacts, data=data)
        write_json_atomic(run_dir / MANIFEST, manifest)

    save()
    for warning in plan.warnings:
        echo(f"warning: {warning}")
    selected = {stage.name for stage in plan.selected}
    total = len(plan.selected)
    outputs: dict[str, str | None] = {}
    status, failure = 0, None
    position = 0
    for stage in STAGES:
        notebook = plan.root / stage.notebook
        last = stages.get(stage.name, {})
        if stage.name not in selected:
            outputs[stage.name] = last.get("output_fingerprint") or (
                "absent" if not notebook.is_file() else last.get("fingerprint"))
            continue
        position += 1
        label = f"[{position}/{total}] {stage.name:<10} {stage.notebook}"
        executed = run_dir / "notebooks" / Path(stage.notebook).name
        if stage.name not in plan.parameters:  # no notebook when the plan was checked
            echo(f"{label}: not written yet, skipped")
            stages[stage.name] = {"notebook": stage.notebook, "status": "missing",
                                  "status_now": "missing"}
            outputs[stage.name] = "absent"
            save()
            continue
        parameters = plan.parameters[stage.name]
        notebook_sha = file_sha256(notebook)
        inputs = {name: outputs.get(name) for name in stage.after}
        fingerprint = stage_fingerprint(notebook_sha, parameters, inputs)
        record_kept = (run_dir / f"{stage.record}.json").is_file() or "warning" in last
        unchanged = (last.get("status") in ("ok", "skipped") and record_kept and
                     last.get("fingerprint") == fingerprint and executed.is_file())
        if unchanged and not force:
            echo(f"{label}: unchanged, skipped")
            stages[stage.name] = dict(last, status="skipped", status_now="skipped")
            outputs[stage.name] = last.get("output_fingerprint")
            save()
            continue
        echo(f"{label}: running")
        # A changed stage starts fresh too: resuming (generation skips task ids already in its
        # store) is only right for the same fingerprint, after a crash.
        changed = bool(last.get("fingerprint")) and last.get("fingerprint") != fingerprint
        superseded = set_aside_outputs(run_dir, stage) if force or changed else []
        (run_dir / f"{stage.record}.json").unlink(missing_ok=True)  # no stale record
        entry: dict[str, Any] = {
            "notebook": stage.notebook, "notebook_sha256": notebook_sha,
            "executed_notebook": str(executed.relative_to(run_dir)),
            "record": f"{stage.record}.json", "parameters": parameters,
            "inputs": inputs, "fingerprint": fingerprint,
            "status": "running", "status_now": "running",
            "started_at": now_iso(), "ended_at": None, "duration_s": None,
        }
        if superseded:
            entry["superseded"] = superseded
            echo(f"{label}: earlier outputs moved to {Path(superseded[0]).parts[0]}/"
                 f"{Path(superseded[0]).parts[1]}/")
        stages[stage.name] = entry
        save()
        tick = time.monotonic()
        try:
            _execute(stage, plan, executed, progress)
        except KeyboardInterrupt:
            entry.update(status="interrupted", status_now="interrupted", ended_at=now_iso(),
                         duration_s=round(time.monotonic() - tick, 3))
            manifest.update(status="interrupted", exit_status=130, ended_at=now_iso(),
                            duration_s=round(time.monotonic() - started, 3))
            save()
            raise
        except Exception as error:  # papermill, nbclient (dead kernel, timeout), I/O
            failure = describe_failure(stage, error, executed)
            entry.update(status="failed", status_now="failed", ended_at=now_iso(),
                         duration_s=round(time.monotonic() - tick, 3),
                         error={"message": failure.message, "cell": failure.cell,
                                "source_line": failure.source_line, "error": failure.error})
            echo(f"{label}: FAILED after {entry['duration_s']:.1f} s")
            status = 1
            break
        entry.update(status="ok", status_now="ran", ended_at=now_iso(),
                     duration_s=round(time.monotonic() - tick, 3))
        entry["output_fingerprint"] = output_fingerprint(fingerprint, entry["ended_at"])
        outputs[stage.name] = entry["output_fingerprint"]
        if read_stage_record(run_dir, stage) is None:
            entry["warning"] = f"the notebook wrote no stage record {stage.record}.json"
            echo(f"warning: {stage.notebook} wrote no stage record {stage.record}.json")
        echo(f"{label}: done in {entry['duration_s']:.1f} s")
        save()
    for name in selected:  # stages after a failure
        entry = stages.get(name)
        if entry is not None and entry.get("status_now") == "not selected":
            entry["status_now"] = "not run"
    manifest.update(status="ok" if status == 0 else "failed", exit_status=status,
                    ended_at=now_iso(), duration_s=round(time.monotonic() - started, 3),
                    error=failure.message if failure else None)
    save()
    return status, manifest


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


def format_parameters(path: Path, params: Mapping[str, NotebookParameter]) -> str:
    """A notebook's parameters as an aligned table: name, type, default, help."""
    note = "  (papermill cannot read this line: keep '=' out of the comment)"
    rows = [(p.name, p.type_label, p.default_text, p.help + ("" if p.read_by_papermill else note))
            for p in params.values()]
    if not rows:
        return f"{path}: no parameters declared"
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    width = [max(w, len(h)) for w, h in zip(width, ("name", "type", "default"))]
    lines = [f"{'name':<{width[0]}}  {'type':<{width[1]}}  {'default':<{width[2]}}  help"]
    lines += [f"{n:<{width[0]}}  {t:<{width[1]}}  {d:<{width[2]}}  {h}" for n, t, d, h in rows]
    return "\n".join(lines)
