"""How commands print a result: one JSON object with ``--json`` (stdout holds only it), else lines."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def print_result(result: Mapping[str, Any], as_json: bool) -> None:
    """``--json``: one JSON object; otherwise one ``key  value`` line per entry."""
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
