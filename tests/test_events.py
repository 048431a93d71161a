"""``events``: the journal, readably, as JSON lines, and followed as it grows; and the
one-line description of every kind of event (`workflow_cli.cli.progress.describe`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import start_runner, write_definition

from workflow_cli.cli.progress import describe

PY = sys.executable
LINE = re.compile(r"^ +(\d+)  (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})  (.+)$")


def check(expression: str = "1", **more: Any) -> dict[str, Any]:
    return {"action": "condition_check", "parameters": {"expression": expression}, **more}


def run(cli: Any, workspace: Path, tasks: dict[str, Any], **extra: Any) -> tuple[int, str]:
    result = cli("run", str(write_definition(workspace, tasks, **extra)), "--json")
    return result.exit_code, result.json()["id"]


def journal(workspace: Path, instance: str) -> list[dict[str, Any]]:
    path = workspace / "instances" / instance / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_event_is_one_readable_line(cli, workspace):
    code, instance = run(
        cli,
        workspace,
        {
            "a": check("2 + 2"),
            "b": check("1 / 0", dependencies=["a"]),
            "c": check(dependencies=["b"]),
        },
    )
    assert code == 1
    result = cli("events", instance)
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    records = journal(workspace, instance)
    assert len(lines) == len(records)
    for line, record in zip(lines, records, strict=True):
        match = LINE.match(line)
        assert match, line
        assert int(match.group(1)) == record["seq"]
        assert record["time"].startswith(f"{match.group(2)}T{match.group(3)}")
    text = result.stdout
    assert re.search(f"instance {instance} created( by \\S+)? \\(3 tasks\\)", text), text
    assert "run started" in text
    assert "a: started (attempt 1)" in text and "a: completed in" in text
    assert "b: failed (attempt 1): ZeroDivisionError" in text
    assert "run ended failed: task 'b' failed" in text


def test_json_lines_are_the_journal_without_checksums_and_with_secrets_masked(cli, workspace):
    code, instance = run(
        cli,
        workspace,
        {"a": check("params.api_token | length")},
        params={"api_token": "tok-0123456789", "region": "eu"},
    )
    assert code == 0
    result = cli("events", instance, "--json")
    assert result.exit_code == 0
    assert "tok-0123456789" not in result.stdout
    events = [json.loads(line) for line in result.stdout.splitlines()]
    records = journal(workspace, instance)
    assert [e["seq"] for e in events] == [r["seq"] for r in records]
    assert all("crc" not in e for e in events)
    assert events[0]["params"] == {"api_token": "***", "region": "eu"}
    assert events[-1] == {k: v for k, v in records[-1].items() if k != "crc"}
    assert "tok-0123456789" not in cli("events", instance).stdout


def test_follow_prints_the_history_then_each_new_event_until_the_run_ends(workspace):
    (workspace / "hold.py").write_text(
        "import json, pathlib, sys, time\n"
        "params = json.load(sys.stdin)\n"
        "deadline = time.monotonic() + 30\n"
        "while not pathlib.Path(params['file']).exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print('{}')\n"
    )
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"hold": {"command": [PY, str(workspace / "hold.py")]}}})
    )
    path = write_definition(
        workspace,
        {
            "held": {"action": "agent_task", "agent_id": "hold", "parameters": {"file": "go"}},
            "after": check(dependencies=["held"]),
        },
    )
    instance, runner = start_runner(workspace, path)
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    events_file = workspace / "instances" / instance / "events.jsonl"
    errors = workspace.parent / "events-stderr.txt"
    follower = None
    try:
        deadline = time.monotonic() + 30
        while '"task_started"' not in events_file.read_text():
            assert time.monotonic() < deadline, "the task did not start"
            time.sleep(0.02)
        follower = subprocess.Popen(
            [PY, "-m", "workflow_cli", "events", instance, "--follow", "--interval", "0.05"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors.open("w"),
            text=True,
        )
        assert follower.stdout is not None
        first = follower.stdout.readline()  # the history comes first
        assert f"instance {instance} created" in first
        (workspace / "go").write_text("x")
        follower.wait(timeout=60)
        out = follower.stdout.read()  # what readline() buffered too
    finally:
        (workspace / "go").write_text("x")
        if follower is not None:
            follower.kill()
        runner.kill()
        runner.wait(timeout=30)
    assert follower.returncode == 0, errors.read_text()
    lines = [first.rstrip("\n"), *out.splitlines()]
    assert len(lines) == len(journal(workspace, instance))
    assert lines[-1].endswith("run ended completed")
    assert any(line.endswith("after: started (attempt 1)") for line in lines)


def test_follow_of_a_finished_instance_ends_at_once(cli, workspace):
    code, instance = run(cli, workspace, {"a": check()})
    assert code == 0
    result = cli("events", instance, "--follow")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].endswith("run ended completed")
    followed = cli("events", instance, "--follow", "--json")
    assert [json.loads(line)["type"] for line in followed.stdout.splitlines()][-1] == "run_ended"


def test_a_unique_prefix_names_the_instance_and_an_unknown_one_is_exit_2(cli, workspace):
    code, instance = run(cli, workspace, {"a": check()})
    assert code == 0
    assert cli("events", instance[:-3]).exit_code == 0
    for args in (["events", "nope"], ["events", "nope", "--follow"], ["events", "../x"]):
        result = cli(*args)
        assert result.exit_code == 2, args
        assert "Traceback" not in result.stderr


def test_describe_gives_every_event_a_line_and_never_fails():
    def event(type_: str, **fields: Any) -> dict[str, Any]:
        return {"seq": 1, "time": "2026-01-01T00:00:00.000+00:00", "type": type_, **fields}

    assert describe(event("child_linked", task="kick", child="p.kick")) is None
    assert describe(event("child_linked", task="kick", child="p.kick"), every=True) == (
        "kick: child instance p.kick"
    )
    assert describe(event("task_retrying", task="t", attempt=1, delay=0.5, error={"message": "x"}))
    assert describe(event("from_the_future", a=1, b="x"), every=True) == (
        "from_the_future: a=1 b=x"
    )
    quiet: dict[str, tuple[dict[str, Any], str]] = {
        "checkpoint_created": (
            {"checkpoint": "0003-auto", "kind": "auto", "label": "every 10", "at_seq": 9},
            "checkpoint 0003-auto (auto, every 10)",
        ),
        "stop_requested": ({"by": "ann", "grace": 5}, "stop requested by ann (grace 5s)"),
        "cancel_requested": ({"by": "ann"}, "cancel requested by ann"),
        "rolled_back": (
            {"checkpoint": "0002-manual", "by": "bob", "tasks": {"a": {}, "b": {}}},
            "rolled back to checkpoint 0002-manual by bob (2 tasks)",
        ),
        "tasks_reset": (
            {"tasks": ["a", "b"], "by": "ann", "why": "retry"},
            "tasks reset for retry by ann: a, b",
        ),
        "task_cancelled": (
            {"task": "t", "reason": "cancelled by ann"},
            "t: cancelled (cancelled by ann)",
        ),
        "task_interrupted": ({"task": "t", "attempt": 1}, "t: interrupted; it runs again"),
        "parameter_set": (
            {"task": "t", "name": "password", "value": "hunter22", "by": "ann"},
            "t: parameter 'password' set by ann",
        ),
        "compensation_started": (
            {"task": "t", "attempt": 1},
            "t: compensation started (attempt 1)",
        ),
        "compensation_completed": (
            {"task": "t", "attempt": 1, "duration": 0.5},
            "t: compensation completed in 500 ms",
        ),
        "compensation_failed": (
            {"task": "t", "attempt": 2, "error": {"message": "no"}},
            "t: compensation failed (attempt 2): no",
        ),
    }
    for type_, (fields, line) in quiet.items():
        assert describe(event(type_, **fields), every=True) == line
    # Odd fields in a type it knows: shown generically, not a crash.
    assert describe(event("rolled_back", by="x"), every=True) == "rolled_back: by=x"
    long = describe(event("odd", blob={"k": "v" * 200}), every=True)
    assert long is not None and long.startswith("odd: blob=") and long.endswith("...")
    assert describe(event("bare"), every=True) == "bare"
    # A known type with fields missing or odd is shown as it is, not a crash.
    broken = event("task_completed", task="t", duration=None)
    assert describe(broken) is None
    assert describe(broken, every=True) == "task_completed: task=t duration=null"
    assert describe(event("approval_recorded", task="g"), every=True) == "approval_recorded: task=g"
