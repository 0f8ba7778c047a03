"""The parameter contract: a notebook's ``parameters`` cell read as papermill reads it, checked.

Types checked: ``int``, ``float`` (an int or a number written as text such as ``2e-5`` is
accepted), ``str``, ``bool``, ``list``/``list[T]``, ``dict``, ``Optional[T]``; ``None`` is
accepted where the default is ``None``. Ranges and choices come from the ``# help`` comment:
``[lo..hi]`` (either end may be left out) and ``{a|b|c}``, checked for each item of a list.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.pipeline.stages import KERNEL_NAME, STAGE_BY_NAME

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


def declared_parameters(path: str | os.PathLike[str]) -> dict[str, NotebookParameter]:
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
                from_cli: str | None = None, *, ranges: bool = True) -> Any:
    """Check one value against a declared parameter; return it converted (int → float, ...).

    ``ranges=False``: the type only (a stage with a config checks ranges and choices there).
    """
    if value is None and param.default is None and param.default_text.strip() == "None":
        return None
    type_text = param.type or (type(param.default).__name__ if param.default is not None else "")
    if type_text:
        value = _check_type(value, type_text, where, from_cli)
    if ranges:
        _check_range(value, param, where)
    return value



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
