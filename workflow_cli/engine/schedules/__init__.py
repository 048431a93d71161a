"""Cron schedules: ``schedules:`` in ``workflow_cli.yaml``, which firings are due, firing them.

A schedule names a template, its parameters, a cron expression (five fields, or six with
seconds last) read in a timezone, what to do when the previous instance is still going
(``overlap``: skip, queue or allow) and how many windows that passed while nothing
ticked are still run (``catchup``: false runs only the latest; N the latest N).

`due_windows` is the pure part: the windows of a cron expression between the last one
handled and now. `run_due_schedules` acts on them: it creates instances and starts each
in a runner of its own (`engine.background`), and records every firing, skip, failure
and missed window. Whoever ticks calls it: ``workflow_cli tick`` (made for the system's
cron) or a server's loop.

What was handled is kept in ``schedules/book.json`` (written atomically), each firing
in ``schedules/firings.jsonl``, both under ``schedules/tick.lock``, so two ticks never
fire one window twice. A window is marked handled, with the id its instance will have,
before the instance is created: a tick that dies halfway leaves a note that the next
tick finishes (makes the instance if it was not made, and starts it), never a second
instance.

The parts: `settings` (the ``schedules:`` block, checked), `windows` (pure), `book`
(the files and the lock), `ticking` (a tick) and `view` (what ``schedules`` shows).
"""

from workflow_cli.engine.schedules.settings import (
    OVERLAPS,
    Schedule,
    ScheduleProblem,
    load_schedules,
    parse_schedules,
)
from workflow_cli.engine.schedules.ticking import Firing, TickReport, run_due_schedules
from workflow_cli.engine.schedules.view import describe_schedules
from workflow_cli.engine.schedules.windows import Due, due_windows, next_window

__all__ = [
    "OVERLAPS",
    "Due",
    "Firing",
    "Schedule",
    "ScheduleProblem",
    "TickReport",
    "describe_schedules",
    "due_windows",
    "load_schedules",
    "next_window",
    "parse_schedules",
    "run_due_schedules",
]
