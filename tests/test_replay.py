"""Recorded journals of real runs, replayed: the fold of each must equal the state it
gave when it was recorded (tests/journals/NAME/state.json). They pin the journal's
format and the meaning of every event for every later change; see
tests/journals/record.py for how they were made."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from workflow_cli.store.instances import load_state
from workflow_cli.store.journal import Journal
from workflow_cli.store.state import fold

JOURNALS = Path(__file__).parent / "journals"
NAMES = sorted(p.name for p in JOURNALS.iterdir() if (p / "events.jsonl").is_file())


def recorded(name: str) -> tuple[Path, dict[str, Any]]:
    folder = JOURNALS / name
    return folder / "events.jsonl", json.loads((folder / "state.json").read_text())


def utc_now() -> datetime:
    return datetime.now(UTC)


def test_the_recordings_are_all_here():
    assert NAMES == [
        "approval_escalated",
        "completed",
        "crashed_mid_run",
        "failed_with_retries",
        "for_each_and_repeat",
        "mailbox_delivered",
        "on_dask",
        "rolled_back",
        "signals",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_the_fold_of_a_recorded_journal_is_what_it_was(name):
    path, expected = recorded(name)
    state = fold(Journal(path, utc_now).read_new())
    assert json.loads(json.dumps(state)) == expected


@pytest.mark.parametrize("name", NAMES)
def test_a_recorded_journal_loads_through_the_cache_path_alike(name, tmp_path):
    """The state cache is only a cache: built from part of the journal and then brought
    up to date, it gives the same state as one fold of the whole."""
    path, expected = recorded(name)
    copy = tmp_path / "events.jsonl"
    shutil.copy(path, copy)
    lines = path.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    partial = fold(Journal(copy, utc_now).read_new()[:half])
    partial["offset"] = sum(len(line) for line in lines[:half])
    (tmp_path / "state.json").write_text(json.dumps(partial))
    state: dict[str, Any] = dict(load_state(Journal(copy, utc_now)))
    state.pop("offset")
    expected.pop("offset")
    assert json.loads(json.dumps(state)) == expected


def test_what_the_recordings_say():
    """The stored expectations are not just whatever the fold gave: they hold what each
    run did."""
    tasks = {name: recorded(name)[1]["tasks"] for name in NAMES}
    states = {name: recorded(name)[1]["state"] for name in NAMES}
    assert states == {
        "approval_escalated": "completed",
        "completed": "completed",
        "crashed_mid_run": "completed",
        "failed_with_retries": "failed",
        "for_each_and_repeat": "completed",
        "mailbox_delivered": "completed",
        "on_dask": "failed",
        "rolled_back": "completed",
        "signals": "completed",
    }
    assert {t["state"] for t in tasks["completed"].values()} == {"completed"}
    assert tasks["crashed_mid_run"]["t3"]["attempts"] == 2  # in flight at the crash
    assert tasks["crashed_mid_run"]["t2"]["attempts"] == 1  # completed before: not again
    flaky = tasks["failed_with_retries"]["flaky"]
    assert (flaky["state"], flaky["attempts"]) == ("failed", 3)
    assert flaky["error"]["kind"] == "exit_code"
    assert tasks["failed_with_retries"]["after"]["state"] == "pending"
    rolled = recorded("rolled_back")[1]
    assert [a["decision"] for a in rolled["approvals"]] == ["approved"]
    assert rolled["runs"] == 6
    assert tasks["rolled_back"]["c"]["output"] == 3
    each = tasks["for_each_and_repeat"]["each"]
    assert each["output"] == [{"index": 0}, {"index": 1}, None, {"index": 3}]
    assert [r["attempts"] for r in each["items"]["records"]] == [1, 2, 0, 1]  # 3: retried
    assert (each["items"]["completed"], each["items"]["skipped"]) == (3, 1)
    loop = tasks["for_each_and_repeat"]["loop"]
    assert (loop["output"], loop["iteration"]) == (4, 2)
    escalated = recorded("approval_escalated")[1]
    assert escalated["requester"] == "ann"
    assert escalated.get("timers", {}) == {}  # fired or cancelled, none left pending
    assert [(g["type"], g.get("level")) for g in escalated["gate_events"]] == [
        ("approval_reminded", 0),
        ("approval_escalated", 1),
        ("approval_reassigned", None),
    ]
    gate = tasks["approval_escalated"]["gate"]["output"]
    assert [(d["by"], d["level"]) for d in gate["decisions"]] == [("ben", 0), ("eve", 1)]
    assert tasks["approval_escalated"]["after"]["output"] == "eve"
    mailbox = recorded("mailbox_delivered")[1]
    review = mailbox["tasks"]["review"]
    assert (review["state"], review["attempts"], review["output"]) == (
        "completed",
        2,
        {"approved": True},
    )
    first, second = mailbox["deliveries"]["review"]
    assert (first["attempt"], first["via"], first["error"]["kind"]) == (1, "command", "agent_error")
    assert second["attempt"] == 2 and second["via"].startswith("outbox:")
    assert mailbox["tasks"]["after"]["output"] is True
    on_dask = tasks["on_dask"]
    assert on_dask["echoed"]["worker"].startswith("tcp://127.0.0.1:")
    assert (on_dask["flaky"]["state"], on_dask["flaky"]["attempts"]) == ("failed", 2)
    assert on_dask["flaky"]["worker"].startswith("tcp://127.0.0.1:")
    signals = recorded("signals")[1]
    assert {k: (s["event"], s["by"], s["consumed_by"]) for k, s in signals["signals"].items()} == {
        "signal-2": ("go", "sam", "early"),  # sent before its wait began: kept, then taken
        "signal-3": ("other", "sam", None),  # no wait for it
        "signal-21": ("paid", "recorder", None),  # the filter does not hold
        "signal-22": ("paid", "bill", "filtered"),  # taken as it came
    }
    assert [signals["tasks"][t]["output"] for t in ("early", "late", "filtered")] == [
        {"n": 1},
        {"timed_out": True},
        {"order_id": 42},
    ]
    assert signals.get("timers", {}) == {}
