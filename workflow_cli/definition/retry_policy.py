"""``retry_on``: which kinds of error a task's retries are for.

Each entry is one of:

- ``timeout`` — the attempt ran out of time;
- ``exit_code:N`` — a command agent exited with code N;
- ``http:NNN`` or ``http:Nxx`` — an HTTP status, exactly or by class (``http:5xx``,
  ``http:429``);
- any other word — an error kind (``connection``, ``exit_code``, ``error``, or a Python
  exception's name such as ``ValueError``).

With ``retry_on`` a failure is retried only when it matches an entry; without it the
action decides (timeouts, connection errors and HTTP 5xx/429 are retried, bad input is
not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Patterns are compiled when first used (and kept in re's cache), not on import.
_EXIT = r"^exit_code:(-?\d+)$"
_HTTP = r"^http:([1-5])(\d\d|xx)$"
_WORD = r"^[A-Za-z_][A-Za-z0-9_.-]*$"


def retry_on_problem(entry: str) -> str | None:
    """Why `entry` is not a valid ``retry_on`` entry, or None when it is."""
    if entry.startswith("exit_code:") and not re.match(_EXIT, entry):
        return f"'{entry}' is not exit_code:N with N an integer"
    if entry.startswith("http:") and not re.match(_HTTP, entry):
        return f"'{entry}' is not an HTTP status such as http:503 or a class such as http:5xx"
    if not (re.match(_EXIT, entry) or re.match(_HTTP, entry) or re.match(_WORD, entry)):
        return f"'{entry}' is not timeout, exit_code:N, http:NNN, http:Nxx or an error kind"
    return None


def retry_allowed(entries: Iterable[str], error: Mapping[str, Any]) -> bool:
    """Whether a failure described by `error` (kind, exit_code, status, …) matches."""
    kind = error.get("kind")
    status = error.get("status")
    exit_code = error.get("exit_code")
    for entry in entries:
        exit_match = re.match(_EXIT, entry)
        http_match = re.match(_HTTP, entry)
        if exit_match:
            if exit_code is not None and exit_code == int(exit_match.group(1)):
                return True
        elif http_match:
            if isinstance(status, int) and _status_matches(status, http_match):
                return True
        elif entry in (kind, error.get("type")):
            return True
    return False


def _status_matches(status: int, match: re.Match[str]) -> bool:
    first, rest = match.group(1), match.group(2)
    if rest == "xx":
        return status // 100 == int(first)
    return status == int(first + rest)
