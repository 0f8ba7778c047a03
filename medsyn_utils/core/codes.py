"""ICD-10 code normalisation.

Sources spell codes differently: Cyrillic look-alike letters (``К29`` with a Cyrillic К),
dagger/asterisk marks (``A17.0+``, ``G01*``), lower case, ICD-10-CM extensions
(``M54.00``, ``C91.A0``) and odd forms (``K29.6.0``). :func:`normalize_code` maps them all onto
the WHO form ``X00`` / ``X00.0`` used by the official Russian МКБ-10.
"""

from __future__ import annotations

import re
from typing import Iterable

from medsyn_utils.core.errors import CodeError

# Cyrillic letters that look like Latin ones (upper case after .upper()).
_LOOKALIKES = str.maketrans({
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "У": "Y", "З": "3", "Ё": "E",
})
_MARKS = re.compile(r"[*+†\s]")
_SHAPE = re.compile(r"^([A-Z]\d\d)(?:\.?([0-9A-Z]{1,4})(?:\.(\d))?)?$")
WHO_CODE = re.compile(r"^[A-Z]\d\d(\.\d{1,2})?$")


def clean_code(code: str) -> str:
    """Upper-case, Latin letters, no marks or spaces; raises :class:`CodeError` if not code-shaped.

    Keeps ICD-10-CM detail (``M54.00`` stays ``M54.00``); use :func:`normalize_code` for WHO form.
    """
    if not isinstance(code, str) or not code.strip():
        raise CodeError(f"malformed ICD-10 code {code!r}: expected a letter and two digits, "
                        f"optionally a dot and a sub-code, e.g. J06 or J06.9")
    text = _MARKS.sub("", code.strip().upper().translate(_LOOKALIKES))
    match = _SHAPE.match(text)
    if not match:
        raise CodeError(f"malformed ICD-10 code {code!r}: expected a letter and two digits, "
                        f"optionally a dot and a sub-code, e.g. J06 or J06.9")
    category, sub, extra = match.groups()
    if not sub:
        return category
    return f"{category}.{sub}" + (f".{extra}" if extra else "")


def normalize_code(code: str, known: Iterable[str] | None = None) -> str:
    """WHO form of a code: Latin letters, no marks, ICD-10-CM detail cut to its WHO parent.

    With ``known`` (the official code list), the longest known prefix is returned
    (``M54.00`` → ``M54.0``, ``C91.A0`` → ``C91``); without it, the code is cut to
    ``X00.0`` (one sub-code digit) and letters after the dot are dropped.
    """
    text = clean_code(code)
    if known is not None:
        known_set = known if isinstance(known, (set, frozenset, dict)) else set(known)
        candidate = text.replace(".", "")
        while len(candidate) >= 3:
            form = candidate[:3] + ("." + candidate[3:] if len(candidate) > 3 else "")
            if form in known_set:
                return form
            candidate = candidate[:-1]
        # Unknown category: fall through to the shape rule, the caller decides what to do.
    category, _, sub = text.partition(".")
    digit = sub[:1] if sub[:1].isdigit() else ""
    return f"{category}.{digit}" if digit else category


def category_of(code: str) -> str:
    """Three-character category of a code (``J06.9`` → ``J06``)."""
    return clean_code(code)[:3]
