"""The geometry the report's charts share, and the time axis of the timeline and the
resource chart (one axis for both, so a peak lines up with the tasks running then)."""

from __future__ import annotations

import math
from datetime import datetime

from workflow_cli.readonly import readonly_dataclass

# Width of every chart; the label column on the left; the plotted part after it.
CHART_W = 1100
LABEL_W = 230
PLOT_W = CHART_W - LABEL_W - 24


@readonly_dataclass
class TimeAxis:
    """The time window both charts share: from `origin`, `total` seconds, ticks every
    `step` seconds; x positions run from the end of the label column to the right margin."""

    origin: datetime
    total: float
    step: float

    def x(self, moment: datetime) -> float:
        return LABEL_W + (moment - self.origin).total_seconds() / self.total * PLOT_W

    def ticks(self) -> list[tuple[float, str]]:
        """(x, label) of each tick."""
        count = round(self.total / self.step)
        return [
            (LABEL_W + i * self.step / self.total * PLOT_W, _tick_label(i * self.step, self.step))
            for i in range(count + 1)
        ]


def time_axis(moments: list[datetime]) -> TimeAxis | None:
    """The axis covering `moments`, widened to a whole number of round steps."""
    if not moments:
        return None
    origin = min(moments)
    total = max((max(moments) - origin).total_seconds(), 0.001)
    step = _nice_step(total)
    return TimeAxis(origin, math.ceil(total / step - 1e-9) * step, step)


def _nice_step(span: float, ticks: int = 8) -> float:
    """A round tick step giving at most about `ticks` ticks over `span` seconds."""
    raw = span / ticks
    if raw >= 60:
        for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
            if step >= raw:
                return float(step)
        return 86400.0 * math.ceil(raw / 86400)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 0.001
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _tick_label(seconds: float, step: float) -> str:
    if step < 1:
        decimals = max(0, -math.floor(math.log10(step)))
        return f"{seconds:.{decimals}f}s"
    if seconds < 60 or (step < 60 and seconds < 600):
        return f"{seconds:.0f}s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours}h{rest:02d}m" if rest else f"{hours}h"
