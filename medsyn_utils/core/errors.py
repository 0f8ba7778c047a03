"""Named errors of the kit. Each message names the input at fault and how to fix it."""

from __future__ import annotations


class MedsynError(Exception):
    """Base class: the CLI prints ``str(error)`` as one line and exits with status 2."""


class DataError(MedsynError):
    """A source file is missing, corrupt or unreadable."""


class CodeError(MedsynError):
    """An ICD-10 code is malformed or unknown."""


class ParameterError(MedsynError):
    """A parameter is unknown, of the wrong type or out of range."""


class ModelError(MedsynError):
    """A model or tokenizer cannot be loaded (offline, wrong path, unknown id)."""


class InputTableError(MedsynError):
    """A task table, generation store or scored dataset is empty or lacks columns."""
