"""ICD-10 code normalisation."""

from __future__ import annotations

import pytest

from medsyn_utils.core.codes import category_of, clean_code, normalize_code
from medsyn_utils.core.errors import CodeError

KNOWN = {"M54", "M54.0", "C91", "K29", "K29.6", "J06", "J06.9", "A17.0", "G01", "E11"}


@pytest.mark.parametrize("raw, cleaned, who", [
    ("J06.9", "J06.9", "J06.9"),
    (" j06 ", "J06", "J06"),
    ("М54.00", "M54.00", "M54.0"),      # Cyrillic М
    ("К29.6.0", "K29.6.0", "K29.6"),    # Cyrillic К, odd three-level form
    ("A17.0+", "A17.0", "A17.0"),       # dagger mark
    ("G01*", "G01", "G01"),             # asterisk mark
    ("C91.A0", "C91.A0", "C91"),        # ICD-10-CM letter sub-code
    ("Е11", "E11", "E11"),              # Cyrillic Е
])
def test_normalisation(raw, cleaned, who):
    assert clean_code(raw) == cleaned
    assert normalize_code(raw, KNOWN) == who


def test_without_known_list_cuts_to_one_digit():
    assert normalize_code("M54.00") == "M54.0"
    assert normalize_code("C91.A0") == "C91"
    assert category_of("J06.9") == "J06"


@pytest.mark.parametrize("bad", ["", "J6", "hello", "106.9", None, "J06..9"])
def test_malformed_codes(bad):
    with pytest.raises(CodeError, match="malformed ICD-10 code"):
        clean_code(bad)
