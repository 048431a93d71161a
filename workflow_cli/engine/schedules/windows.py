"""Windows: the moments a cron expression (read in a timezone) names. Pure: reads and
writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workflow_cli.readonly import readonly_dataclass

# Windows looked at per schedule and tick: a seconds-cron left alone for weeks is
# counted as missed up to here, not scanned to the end.
MAX_SCAN = 10_000


@readonly_dataclass
class Due:
    """The windows of one schedule that a tick acts on."""

    fire: list[datetime]  # run these, oldest first
    missed: list[datetime]  # not run (catchup): the first and last of them, if any
    missed_count: int
    capped: bool = False  # more windows were missed than were counted


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def due_windows(cron: str, timezone: str, after: datetime, now: datetime, catchup: int) -> Due:
    """The windows of `cron` (read in `timezone`) later than `after` and not later than
    `now`: the latest `catchup` of them to run, the rest missed (counted up to
    `MAX_SCAN`; ``capped`` says the count stopped there)."""
    from datetime import timedelta

    from croniter import croniter

    zone = _zone(timezone)
    forward = croniter(cron, after.astimezone(zone))
    first: datetime | None = None
    count, capped = 0, True
    for _ in range(MAX_SCAN):
        window: datetime = forward.get_next(datetime)
        if window > now:
            capped = False
            break
        count += 1
        first = first or window
    if first is None:
        return Due([], [], 0)
    # The latest windows, walking back from now (windows fall on whole seconds).
    backward = croniter(cron, (now.replace(microsecond=0) + timedelta(seconds=1)).astimezone(zone))
    fire = [backward.get_prev(datetime) for _ in range(min(catchup, count))]
    fire = [w.astimezone(UTC) for w in reversed(fire)]
    missed_count = count - len(fire)
    if missed_count <= 0:
        return Due(fire, [], 0)
    last_missed: datetime = croniter(cron, fire[0].astimezone(zone)).get_prev(datetime)
    return Due(fire, [first.astimezone(UTC), last_missed.astimezone(UTC)], missed_count, capped)


def next_window(cron: str, timezone: str, after: datetime) -> datetime:
    """The first window of `cron` later than `after`, in UTC."""
    from croniter import croniter

    window: datetime = croniter(cron, after.astimezone(_zone(timezone))).get_next(datetime)
    return window.astimezone(UTC)
