"""At 60 columns the run's progress and the monitor keep the essentials (state, counts,
health) whole and wrap the details rather than cutting them."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from workflow_cli.cli.monitor import DashboardView, Vitals
from workflow_cli.cli.progress import RichReporter

ERROR = "connection refused by the database server at db.internal:5432 after 3 attempts"


def _state() -> dict[str, Any]:
    return {
        "id": "sequential_pipeline-20261203-064747-cc4371",
        "template": "sequential_pipeline",
        "state": "running",
        "runner": {"started_at": "2026-01-01T10:00:00+00:00"},
        "tasks": {
            "extract": {"state": "completed", "attempts": 1, "duration": 1.2},
            "transform_the_records": {
                "state": "running",
                "attempts": 2,
                "started_at": "2026-01-01T10:00:01+00:00",
            },
            "load": {"state": "failed", "attempts": 3, "error": {"message": ERROR}},
            "notify": {"state": "pending", "attempts": 0},
        },
    }


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_progress_at_60_columns_wraps_counts_and_names_whole():
    console = Console(width=60, file=io.StringIO(), force_terminal=True, record=True)
    reporter = RichReporter(console)
    reporter.on_events([], _state())  # type: ignore[arg-type]
    console.print(reporter.progress.get_renderable())
    text = console.export_text()
    assert all(len(line) <= 60 for line in text.splitlines())
    assert text.startswith("running ")
    assert "1/4 completed, 1 running, 1 failed · transform_the_records" in _flat(text)
    assert "…" not in text


def test_monitor_at_60_columns_keeps_states_whole_and_wraps_errors():
    now = datetime(2026, 1, 1, 10, 0, 5, tzinfo=UTC)
    console = Console(width=60, height=30, record=True, force_terminal=True)
    state = _state()
    vitals = Vitals(SimpleNamespace(workspace=None, clock=lambda: now), state["id"])  # type: ignore[arg-type]
    vitals.health = {"score": 61.5, "level": "warning"}
    follower = SimpleNamespace(state=state, latest=[])
    view = DashboardView(follower, vitals, console)  # type: ignore[arg-type]
    console.print(view.render(now, None))
    text = console.export_text()
    assert all(len(line) <= 60 for line in text.splitlines())
    words = [line.split() for line in text.splitlines()]
    rows = {w[0]: w[1] for w in words if len(w) >= 2 and w[0] in state["tasks"]}
    assert rows["extract"] == "completed" and rows["load"] == "failed"
    assert rows["notify"] == "pending"
    assert "health 61.5 (warning)" in _flat(text)
    assert "1/4 tasks completed, 1 running, 1 failed" in _flat(text)
    assert f"load: {ERROR}" in _flat(text)  # wrapped under the table, whole
