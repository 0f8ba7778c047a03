"""Checks of the values a user types (numbers, ports, URLs) and the words for OS errors.

Every check raises :class:`~medsyn_utils.core.errors.ParameterError` with one line naming the
input, the value and what would be accepted; call them before any model loads.
"""

from __future__ import annotations

import errno
import math
from typing import Any
from urllib.parse import urlsplit

from medsyn_utils.core.errors import ParameterError

# Seeds: what numpy's legacy RandomState, torch.manual_seed and every backend accept alike.
from medsyn_utils.core.config import SEED_MAX
PORT_MAX = 65535


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 integer: bool = False, low_open: bool = False, allow_zero: bool = False) -> Any:
    """``value`` if it is a finite number (an integer when ``integer``) within the bounds.

    ``low_open``: ``low`` itself is refused (``> low``); ``allow_zero``: 0 is accepted whatever
    the bounds (0 meaning "off" or "any").
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if integer else "a number"
        raise ParameterError(f"{name}={value!r} is not {kind}: give {_accepted(low, high, integer, low_open)}")
    if allow_zero and value == 0:
        return value
    not_integer = integer and isinstance(value, float) and not value.is_integer()
    if not_integer or isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"{name}={value!r} is not {'an integer' if integer else 'a finite number'}: "
                             f"give {_accepted(low, high, integer, low_open)}")
    if integer:
        value = int(value)
    below = low is not None and (value <= low if low_open else value < low)
    if below or (high is not None and value > high):
        extra = " (or 0)" if allow_zero else ""
        raise ParameterError(f"{name}={value!r} is out of range: give "
                             f"{_accepted(low, high, integer, low_open)}{extra}")
    return value


def _accepted(low: float | None, high: float | None, integer: bool, low_open: bool) -> str:
    kind = "an integer" if integer else "a number"
    if low is not None and high is not None and not low_open:
        return f"{kind} from {low} to {high}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"<= {high}")
    return f"{kind} {' and '.join(parts)}" if parts else kind


def check_seed(name: str, value: Any) -> int:
    """A seed: an integer from 0 to :data:`SEED_MAX`."""
    return check_number(name, value, low=0, high=SEED_MAX, integer=True)


def check_port(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """A TCP port from 1 to 65535 (0 = any free port, where ``allow_zero``)."""
    return check_number(name, value, low=1, high=PORT_MAX, integer=True, allow_zero=allow_zero)


def check_base_url(url: Any, name: str = "base_url") -> str:
    """An http(s) URL with a host and, if given, a port from 1 to 65535; else one line saying why.

    >>> check_base_url("http://127.0.0.1:8000/v1")
    'http://127.0.0.1:8000/v1'
    """
    if not isinstance(url, str) or not url.strip():
        raise ParameterError(f"{name}={url!r} is not a URL: give one such as http://127.0.0.1:8000/v1")
    fix = "give one such as http://127.0.0.1:8000/v1"
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise ParameterError(f"{name} {url!r} holds spaces or control characters: {fix}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        reason = str(error).splitlines()[0] if str(error) else "it cannot be parsed"
        raise ParameterError(f"{name} {url}: {_url_reason(reason)}: {fix}") from None
    if parts.scheme not in ("http", "https"):
        raise ParameterError(f"{name} {url}: the scheme must be http or https, not "
                             f"{parts.scheme or 'missing'!r}: {fix}")
    if not parts.hostname:
        raise ParameterError(f"{name} {url}: no host: {fix}")
    if port is not None and not 1 <= port <= PORT_MAX:
        raise ParameterError(f"{name} {url}: port {port} is out of range 1-{PORT_MAX}: {fix}")
    return url


def _url_reason(reason: str) -> str:
    lowered = reason.lower()
    if "ipv6" in lowered:
        return "an IPv6 address is not closed with ']'"
    if "port" in lowered:
        return f"the port is not a number from 1 to {PORT_MAX} ({reason})"
    return reason


# What an OS error means, in words that name the cause (the path or port is added by the caller).
OS_REASONS = {
    errno.ELOOP: "a symlink loop (a link that points back to itself): point it at a real file",
    errno.ENOSPC: "no space left on the device: free space there or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free space there or write elsewhere",
    errno.EROFS: "a read-only file system: write elsewhere",
    errno.EACCES: "permission denied: check its permissions",
    errno.EPERM: "operation not permitted: check its permissions",
    errno.ENAMETOOLONG: "the name is too long: use a shorter path",
    errno.EADDRINUSE: "the port is already in use: stop what listens there or choose another port",
    errno.EADDRNOTAVAIL: "the address is not on this machine: use 127.0.0.1 or one of its addresses",
}


def os_reason(error: OSError) -> str:
    """The cause of an OS error in words (``a symlink loop ...``), else its own text."""
    if error.errno in OS_REASONS:
        return OS_REASONS[error.errno]
    return f"{(error.strerror or type(error).__name__).lower()}: check the path and its permissions"


def read_yaml(path: Any, what: str = "parameter file") -> Any:
    """The YAML document in ``path``; any problem reading or parsing it is one line naming the
    file (and the line for a syntax error)."""
    import yaml

    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(f"{what} {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise ParameterError(f"{what} {path} is a folder: give a YAML file") from None
    except UnicodeDecodeError as error:
        raise ParameterError(f"{what} {path} is not UTF-8 text (byte {error.start}): save it as "
                             f"UTF-8") from None
    except OSError as error:
        raise ParameterError(f"{what} {path} cannot be read: {os_reason(error)}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ParameterError(f"{what} {path}{line} is not valid YAML: "
                             f"{getattr(error, 'problem', None) or str(error).splitlines()[0]}") from None
    except RecursionError:
        raise ParameterError(f"{what} {path} is nested too deeply to read") from None

