"""The one way times, durations and sizes read on the terminal.

Times are shown in local time with the zone (or in UTC with ``--utc``); at a terminal,
recent times read as an age ("3 min ago"). Durations read as ``3 min 20 s``; sizes go
through `humanize`. Every command words them alike through this module.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(stamp: object) -> datetime | None:
    """An ISO 8601 time from the journal (UTC when it names no zone), or None."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(stamp: object, *, utc: bool = False) -> str:
    """``2026-12-03 07:04:05 CET``: local time (or UTC) with its zone; "" for no time."""
    moment = parse_time(stamp)
    if moment is None:
        return ""
    moment = moment.astimezone(UTC) if utc else moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S ") + (moment.tzname() or "")


def format_age(stamp: object, now: datetime, *, utc: bool = False) -> str:
    """``just now``, ``42 s ago``, ``3 min ago``, ``5 h ago``, ``2 d ago``; older than a
    week, the time itself; "" for no time."""
    moment = parse_time(stamp)
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    if seconds < 0 or seconds >= 7 * 86400:
        return format_time(stamp, utc=utc)
    if seconds < 1:
        return "just now"
    return f"{_compact(seconds, parts=1)} ago"


def format_duration(seconds: float | None) -> str:
    """``850 ms``, ``4.2 s``, ``3 min 20 s``, ``2 h 5 min``, ``1 d 1 h``; "" for none."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    return _compact(seconds, parts=2)


_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def _compact(seconds: float, *, parts: int) -> str:
    """The largest `parts` units of a whole number of seconds: ``3 min 20 s``."""
    left = round(seconds)
    shown: list[str] = []
    for unit, size in _UNITS:
        if left >= size or (unit == "s" and not shown):
            count, left = divmod(left, size)
            shown.append(f"{count} {unit}")
        elif shown:
            break  # ``1 h 0 min 5 s`` reads as ``1 h``
        if len(shown) == parts:
            break
    return " ".join(shown)


def format_size(size: float | None) -> str:
    """``1.2 MB`` (decimal units); "" for no size."""
    if size is None:
        return ""
    import humanize

    return str(humanize.naturalsize(size))
