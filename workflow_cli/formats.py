"""The one way times, durations and sizes read, on the terminal and in the report.

Times are shown in local time with the zone (or in UTC with ``--utc``); at a terminal,
recent times read as an age ("3 min ago"). Durations read as ``3 min 05 s``; sizes in
binary units through `humanize`. Every command and the report word them alike through
this module.
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
    return f"{_compact(seconds)} ago"


def format_duration(seconds: float | None) -> str:
    """``<1 ms``, ``250 ms``, ``2.5 s``, ``42 s``, ``3 min 05 s``, ``2 h 07 min``,
    ``3 d 04 h``; "" for no duration."""
    if seconds is None:
        return ""
    if seconds < 0.001:
        return "<1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def _compact(seconds: float) -> str:
    """The largest unit of a number of seconds: ``42 s``, ``3 min``, ``5 h``, ``2 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def format_size(size: float | None) -> str:
    """``512 B``, ``47.7 MiB`` (binary units, as memory and disks are measured); "" for
    no size."""
    if size is None:
        return ""
    if size < 1024:
        return f"{int(size)} B"
    import humanize

    return str(humanize.naturalsize(size, binary=True, format="%.1f"))
