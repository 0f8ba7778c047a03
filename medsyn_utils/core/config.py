"""The stage contract: a typed config per stage, the one source of each parameter's default,
range, choices and help.

Each stage folder has ``config.py`` with a :class:`StageConfig` subclass. The notebook's
``parameters`` cell, the stage's command (options built by ``cli/options.py``), ``medsyn run``
(``--set`` and YAML checked by :meth:`StageConfig.check`) and ``medsyn params NAME`` all read it;
``tests/pipeline/test_contract.py`` fails when a door disagrees with it.

Adding a parameter is one line in the config (``name: type = field(default, "help", ge=…)``)
plus the same name and default in the notebook's parameters cell.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medsyn_utils.core.errors import ParameterError

# numpy's seeds: SeedSequence takes any int, but RandomState, torch and the int64 seed column
# do not; one range everywhere.
SEED_MAX = 2**32 - 1
DEFAULT_RUN_DIR = "outputs/interactive"  # where a notebook or stage command writes when given no run folder


def field(default: Any, help: str, **constraints: Any) -> Any:
    """A config field: default, one line of help and ``ge``/``gt``/``le``/``lt`` bounds."""
    if isinstance(default, (list, dict)):
        factory = (lambda value=default: type(value)(value))
        return Field(default_factory=factory, description=help, **constraints)
    return Field(default, description=help, **constraints)


def run_dir_field(help: str) -> Any:
    """The run folder a stage reads and writes (``help``: what it reads and writes there)."""
    return field(DEFAULT_RUN_DIR, help)


def data_dir_field() -> Any:
    """The offline data mirror every stage may be given (``common.data_dir`` of a run)."""
    return field("", "offline data mirror laid out like shared/data; empty means "
                     "MEDSYN_DATA_DIR, else download with checksums")


def zero_or_at_least(name: str, minimum: int, reason: str) -> Any:
    """A validator for a count where 0 turns something off and 1..``minimum``-1 are too few
    (``reason``: the one-line why, shown to the user)."""
    def check(cls: Any, value: int) -> int:
        if 0 < value < minimum:
            raise ValueError(reason)
        return value
    return field_validator(name)(check)


def seed_field(help: str = "random seed") -> Any:
    """A seed: an integer within numpy's range."""
    return field(0, help, ge=0, le=SEED_MAX)


class StageConfig(BaseModel):
    """Base of the stage configs: unknown keys refused, floats finite, values re-checked."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True,
                              validate_default=True)

    STAGE: ClassVar[str] = ""  # the stage name of ``medsyn run`` (graph, tasks, generation, ...)
    # Fields only the notebook reads, with why (not a command option).
    NOTEBOOK_ONLY: ClassVar[dict[str, str]] = {}
    # Fields the stage command names otherwise (``run_dir`` → ``--out``), with the option.
    CLI_ALIASES: ClassVar[dict[str, str]] = {}

    @classmethod
    def check(cls, values: Mapping[str, Any] | None = None, **more: Any) -> Any:
        """A validated config from ``values``; a bad value is one :class:`ParameterError`."""
        data = {**dict(values or {}), **more}
        try:
            return cls(**data)
        except ValidationError as error:
            raise ParameterError(error_line(cls, error, data)) from None

    @classmethod
    def problems(cls, values: Mapping[str, Any]) -> list[str]:
        """Every problem of ``values`` as one line each (empty when they are valid)."""
        try:
            cls(**dict(values))
        except ValidationError as error:
            return [error_line(cls, error, dict(values), index)
                    for index in range(len(error.errors()))]
        return []

    @classmethod
    def from_notebook(cls, namespace: Mapping[str, Any]) -> Any:
        """The checked config of a notebook's parameters (its other variables ignored)."""
        return cls.check({name: namespace[name] for name in cls.model_fields if name in namespace})

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes``, validated."""
        return type(self).check({**self.model_dump(), **changes})

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default."""
        return {name: info.get_default(call_default_factory=True)
                for name, info in cls.model_fields.items()}


# ------------------------------------------------------------------------------ describing

def _origin(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    return typing.get_origin(annotation), typing.get_args(annotation)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin, args = _origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else annotation), True
    return annotation, False


def choices(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` field (or of a list of ``Literal`` items)."""
    annotation, _ = _strip_optional(annotation)
    origin, args = _origin(annotation)
    if origin is Literal:
        return args
    if origin in (list, tuple) and args:
        return choices(args[0])
    return None


def type_label(annotation: Any) -> str:
    """A short type name: ``int``, ``float``, ``str``, ``bool``, ``list[str]``, ``dict``."""
    annotation, optional = _strip_optional(annotation)
    origin, args = _origin(annotation)
    if origin is Literal:
        label = type(args[0]).__name__
    elif origin in (list, tuple):
        label = f"list[{type_label(args[0])}]" if args else "list"
    elif origin is dict:
        label = "dict"
    else:
        label = getattr(annotation, "__name__", str(annotation))
    return f"{label} or None" if optional else label


def bounds(info: Any) -> tuple[float | None, float | None, bool, bool]:
    """``(low, high, low_open, high_open)`` of a field's ``ge``/``gt``/``le``/``lt``."""
    low = high = None
    low_open = high_open = False
    for item in info.metadata:
        for name in ("ge", "gt", "le", "lt"):
            value = getattr(item, name, None)
            if value is None:
                continue
            if name in ("ge", "gt"):
                low, low_open = value, name == "gt"
            else:
                high, high_open = value, name == "lt"
    return low, high, low_open, high_open


def accepts(cls: type[StageConfig], name: str) -> str:
    """What a field accepts, in words (for errors and ``medsyn params``)."""
    info = cls.model_fields[name]
    allowed = choices(info.annotation)
    label = type_label(info.annotation)
    if allowed is not None:
        text = "|".join(str(c) for c in allowed)
        return f"a list of values among {text}" if label.startswith("list") else f"one of {text}"
    low, high, low_open, high_open = bounds(info)
    kind = {"int": "an integer", "float": "a finite number", "bool": "true or false",
            "str": "text", "dict": "a mapping"}.get(label.split(" ")[0], f"a {label}")
    if label.startswith("list"):
        kind = f"a {label}"
    if low is None and high is None:
        return kind
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return (f"{kind} in {left}{'' if low is None else _num(low)}.."
            f"{'' if high is None else _num(high)}{right}")


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def error_line(cls: type[StageConfig], error: ValidationError, data: Mapping[str, Any],
               index: int = 0) -> str:
    """One line naming the stage, the parameter, the value and what it accepts."""
    first = error.errors()[index]
    loc = [str(part) for part in first.get("loc", ())]
    name = loc[0] if loc else "?"
    stage = cls.STAGE or cls.__name__
    if first.get("type") == "extra_forbidden":
        return (f"unknown parameter {stage}.{name}: valid keys are "
                f"{', '.join(cls.model_fields)} (see `medsyn params {stage}`)")
    value = data.get(name, first.get("input"))
    if len(loc) > 1 and isinstance(value, (list, tuple)) and loc[1].isdigit() and \
            int(loc[1]) < len(value):
        value = value[int(loc[1])]
    shown = _shown(value)
    where = f"{stage}.{name}" + "".join(f"[{part}]" for part in loc[1:])
    if name not in cls.model_fields:
        return f"{where}={shown}: {first.get('msg')}"
    line = f"{where}={shown} is not accepted: use {accepts(cls, name)}"
    if first.get("type") == "value_error":  # a field validator's own reason
        line += f" ({str(first.get('msg', '')).removeprefix('Value error, ')})"
    return line


def _shown(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(cls: type[StageConfig]) -> list[dict[str, Any]]:
    """One row per field: name, type, default, accepts, help, door."""
    rows = []
    for name, info in cls.model_fields.items():
        door = ("notebook only: " + cls.NOTEBOOK_ONLY[name]) if name in cls.NOTEBOOK_ONLY else ""
        rows.append({"name": name, "type": type_label(info.annotation),
                     "default": info.get_default(call_default_factory=True),
                     "accepts": accepts(cls, name), "help": info.description or "",
                     "door": door})
    return rows


def format_config(cls: type[StageConfig]) -> str:
    """The config as an aligned table (what ``medsyn params NAME`` prints)."""
    import json

    rows = [(r["name"], r["type"], json.dumps(r["default"], ensure_ascii=False),
             r["help"] + f" ({r['accepts']})" + (f" [{r['door']}]" if r["door"] else ""))
            for r in describe(cls)]
    width = [max(len(row[i]) for row in rows + [("name", "type", "default", "")])
             for i in range(3)]
    lines = [f"{'name':<{width[0]}}  {'type':<{width[1]}}  {'default':<{width[2]}}  help"]
    lines += [f"{n:<{width[0]}}  {t:<{width[1]}}  {d:<{width[2]}}  {h}" for n, t, d, h in rows]
    return "\n".join(lines)


__all__ = ["SEED_MAX", "StageConfig", "data_dir_field", "accepts", "bounds", "choices", "describe", "error_line",
           "field", "format_config", "seed_field", "type_label"]
