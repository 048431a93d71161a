"""How texts and figures read on the report's page, and how they are escaped."""

from __future__ import annotations

import html
from typing import Any

# Beyond this many characters a text from a definition, an error or an agent is clipped.
MAX_TEXT = 2000


def escape(value: Any) -> str:
    """`value` as text escaped for HTML (and SVG inside HTML), quotes included."""
    return html.escape(str(value), quote=True)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending with "…" when cut."""
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


def format_seconds(seconds: float) -> str:
    """A duration for people: 340 ms, 2.5 s, 3 min 05 s, 2 h 07 min."""
    if seconds < 0.001:
        return "<1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours} h {rest:02d} min"


def short_time(text: str | None) -> str:
    """An ISO time to the second, with a space for the T: 2030-01-01 12:00:00."""
    return (text or "")[:19].replace("T", " ")


def format_score(score: float) -> str:
    """A health score (0 to 100) as shown: 87.5, 100."""
    return f"{round(score, 1):g}"


def format_bytes(value: float) -> str:
    """A size in bytes as shown: 512 B, 47.7 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
