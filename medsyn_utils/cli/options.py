"""A stage command's options, built from the stage's config (names, defaults, help, choices).

``add_config_options(parser, GenerationConfig)`` adds ``--max-new-tokens`` and the rest;
``config_from_args(GenerationConfig, args)`` turns the parsed values back into a checked config,
so a bad value (``--temperature inf``) is the config's one-line error, before anything loads.
Fields in ``NOTEBOOK_ONLY`` or ``CLI_ALIASES`` (``run_dir`` is ``--out``) are left out.
"""

from __future__ import annotations

import argparse
import json
import typing
from typing import Any

from medsyn_utils.core.config import StageConfig, _strip_optional, accepts, choices, type_label


def _parse_mapping(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON mapping ({error.msg})") from None


def _scalar(annotation: Any) -> Any:
    annotation, _ = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0])
    if origin in (list, tuple):
        return _scalar(typing.get_args(annotation)[0]) if typing.get_args(annotation) else str
    return annotation


def option_fields(config: type[StageConfig], skip: tuple[str, ...] = ()) -> list[str]:
    """The fields that are options of the stage command."""
    return [name for name in config.model_fields if name not in config.NOTEBOOK_ONLY
            and name not in config.CLI_ALIASES and name not in skip]


def add_config_options(parser: argparse.ArgumentParser, config: type[StageConfig],
                       skip: tuple[str, ...] = (), *, only_given: bool = False) -> None:
    """One option per field: ``--name-with-dashes``, the field's default, help and choices.

    ``only_given``: an option not on the command line is absent from the parsed namespace
    (for a command that merges a parameter file under the options); the help still shows
    the config's default, which applies when neither gives a value.
    """
    for name in option_fields(config, skip):
        info = config.model_fields[name]
        flag = "--" + name.replace("_", "-")
        shown = info.get_default(call_default_factory=True)
        default = argparse.SUPPRESS if only_given else shown
        help_text = f"{info.description} ({accepts(config, name)}; default {shown!r})"
        help_text = help_text.replace("%", "%%")
        label = type_label(info.annotation)
        allowed = choices(info.annotation)
        kind = _scalar(info.annotation)
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                default=default, help=help_text)
        elif label.startswith("list"):  # choices are checked by the config (after comma split)
            parser.add_argument(flag, dest=name, nargs="*", type=kind, default=default,
                                metavar=name.upper(), help=help_text)
        elif label.startswith("dict"):
            parser.add_argument(flag, dest=name, type=_parse_mapping, default=default,
                                metavar="JSON", help=help_text)
        else:  # choices are checked by the config: one message for every door
            parser.add_argument(flag, dest=name, type=kind, default=default,
                                metavar="{" + ",".join(map(str, allowed)) + "}" if allowed
                                else None, help=help_text)


def config_from_args(config: type[StageConfig], args: argparse.Namespace, **more: Any) -> Any:
    """The checked config of the parsed options (plus ``more``, e.g. ``run_dir``)."""
    values = {name: getattr(args, name) for name in config.model_fields if hasattr(args, name)}
    for name, value in values.items():  # --controls a,b is --controls a b
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            values[name] = [part.strip() for item in value for part in item.split(",")
                            if part.strip()]
    return config.check({**values, **more})


__all__ = ["add_config_options", "config_from_args", "option_fields"]
