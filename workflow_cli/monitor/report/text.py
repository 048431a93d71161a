"""How texts and figures read on the report's page, and how they are escaped."""

from __future__ import annotations

import html
from typing import Any

from workflow_cli.formats import format_duration, format_size

# Beyond this many characters a text from a definition, an error or an agent is clipped.
MAX_TEXT = 2000


def escape(value: Any) -> str:
    """`value` as text escaped for HTML (and SVG inside HTML), quotes included."""
    return html.escape(str(value), quote=True)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending with "…" when cut."""
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


def format_seconds(seconds: float) -> str:
    """A duration for people: 340 ms, 2.5 s, 3 min 05 s, 2 h 07 min (`formats`)."""
    return format_duration(seconds)


def short_time(text: str | None) -> str:
    """An ISO time to the second, with a space for the T: 2030-01-01 12:00:00."""
    return (text or "")[:19].replace("T", " ")


def format_score(score: float) -> str:
    """A health score (0 to 100) as shown: 87.5, 100."""
    return f"{round(score, 1):g}"


def format_bytes(value: float) -> str:
    """A size in bytes as shown: 512 B, 47.7 MiB (`formats`)."""
    return format_size(value)
