"""Stop, resume, cancel, checkpoints, rollback, retry, skip, --set, compensation and the
recovery policy, through the real CLI with real runner processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, start_runner, write_definition
from conftest import journal_events as events

from workflow_cli.cli.context import utc_now
from workflow_cli.store.journal import Journal

WAIT_LIMIT = 30.0

# A command agent: records its pid, waits for the file `release` (bounded), appends one
# line to effects/<task>.log and prints its parameters back.
AGENT = """\
import json, os, sys, time
task = os.environ["WORKFLOW_TASK"]
params = json.load(sys.stdin)
os.makedirs("pids", exist_ok=True)
scratch = os.path.join("pids", ".%d" % os.getpid())
with open(scratch, "w") as handle:
    handle.write(str(os.getpid()))
os.replace(scratch, os.path.join("pids", task))  # whole
deadline = time.monotonic() + 30
while params.get("block") and not os.path.exists("release") and time.monotonic() < deadline:
    time.sleep(0.01)
if params.get("exit"):
    sys.exit(params["exit"])
os.makedirs("effects", exist_ok=True)
with open(os.path.join("effects", task + ".log"), "a") as handle:
    handle.write(json.dumps(params) + "\\n")
print(json.dumps({"task": task, "params": params}))
"""
UNDO = """\
import json, sys
params = json.load(sys.stdin)
if params.get("fail"):
    sys.exit(1)
with open("undo.log", "a") as handle:
    handle.write(params["text"] + "\\n")
"""


@pytest.fixture(autouse=True)
def agent(workspace: Path) -> None:
    (workspace / "agent.py").write_text(AGENT)
    (workspace / "undo.py").write_text(UNDO)
    agents = {
        "agents": {
            "work": {"command": [sys.executable, str(workspace / "agent.py")]},
            "undo": {"command": [sys.executable, str(workspace / "undo.py")]},
        }
    }
    (workspace / "agents.yaml").write_text(json.dumps(agents))


def work(*deps: str, **parameters: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"action": "agent_task", "agent_id": "work", "parameters": parameters}
    if deps:
        task["dependencies"] = list(deps)
    return task


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def types(workspace: Path, instance: str) -> list[str]:
    return [e["type"] for e in events(workspace, instance)]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def effects(workspace: Path, task: str) -> list[dict[str, Any]]:
    path = workspace / "effects" / f"{task}.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def create(cli: Callable[..., Result], workspace: Path, tasks: dict[str, Any], **extra: Any) -> str:
    created = cli("create", str(write_definition(workspace, tasks, **extra)), "--json")
    assert created.exit_code == 0, created
    return str(created.json()["id"])


# -- stop, resume, cancel ------------------------------------------------------------------


def test_stop_lets_tasks_in_flight_finish_then_resume_goes_on(workspace, cli):
    path = write_definition(workspace, {"a": work(block=True), "b": work("a")})
    instance, runner = start_runner(workspace, path)
    try:
        wait_until(lambda: (workspace / "pids" / "a").exists(), "a to start")
        stopped = cli("stop", instance, "--wait", "0", "--as", "ops", "--json")
        assert stopped.exit_code == 0, stopped
        assert stopped.json()["requested"] is True
        (workspace / "release").write_text("")
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert runner.returncode == 130
    status = cli("status", instance, "--json").json()
    assert status["state"] == "paused"
    assert status["reason"] == "stopped by ops"
    assert status["tasks"]["a"]["state"] == "completed"
    assert status["tasks"]["b"]["state"] == "pending"
    kinds = [c["kind"] for c in cli("checkpoints", instance, "--json").json()]
    assert kinds[0] == "stop"
    resumed = cli("resume", instance)
    assert resumed.exit_code == 0, resumed
    assert [len(effects(workspace, t)) for t in "ab"] == [1, 1]


def test_stop_with_grace_interrupts_tasks_in_flight_and_kills_their_process_groups(workspace, cli):
    path = write_definition(workspace, {"a": work(block=True), "b": work("a")})
    instance, runner = start_runner(workspace, path)
    try:
        wait_until(lambda: (workspace / "pids" / "a").exists(), "a to start")
        pid = int((workspace / "pids" / "a").read_text())
        stopped = cli("stop", instance, "--grace", "0.1", "--wait", str(WAIT_LIMIT), "--json")
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert stopped.exit_code == 0, stopped
    assert stopped.json()["runner_ended"] is True
    assert stopped.json()["state"] == "paused"
    wait_until(lambda: not alive(pid), "the interrupted agent to be gone")
    interrupted = [e for e in events(workspace, instance) if e["type"] == "task_interrupted"]
    assert [e["task"] for e in interrupted] == ["a"]
    assert "task_failed" not in types(workspace, instance)
    assert cli("status", instance, "--json").json()["tasks"]["a"]["state"] == "pending"
    (workspace / "release").write_text("")
    assert cli("resume", instance).exit_code == 0
    assert len(effects(workspace, "a")) == 1


def test_ctrl_c_once_finishes_tasks_in_flight_twice_interrupts_at_once(workspace, cli):
    path = write_definition(workspace, {"a": work(block=True), "b": work("a")})
    instance, runner = start_runner(workspace, path)
    try:
        wait_until(lambda: (workspace / "pids" / "a").exists(), "a to start")
        pid = int((workspace / "pids" / "a").read_text())
        runner.send_signal(signal.SIGINT)
        wait_until(lambda: "stop_requested" in types(workspace, instance), "the stop")
        assert runner.poll() is None  # the first Ctrl-C waits for the task in flight
        runner.send_signal(signal.SIGINT)
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert runner.returncode == 130
    wait_until(lambda: not alive(pid), "the agent to be gone")
    status = cli("status", instance, "--json").json()
    assert status["state"] == "paused"
    assert status["tasks"]["a"]["state"] == "pending"
    (workspace / "release").write_text("")
    assert cli("resume", instance).exit_code == 0


def test_ctrl_c_once_lets_the_task_finish_and_pauses_before_the_next(workspace, cli):
    path = write_definition(workspace, {"a": work(block=True), "b": work("a")})
    instance, runner = start_runner(workspace, path)
    try:
        wait_until(lambda: (workspace / "pids" / "a").exists(), "a to start")
        runner.send_signal(signal.SIGINT)
        (workspace / "release").write_text("")
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert runner.returncode == 130
    status = cli("status", instance, "--json").json()
    assert (status["state"], status["tasks"]["a"]["state"]) == ("paused", "completed")
    assert status["tasks"]["b"]["state"] == "pending"


def test_cancel_kills_tasks_in_flight_and_the_instance_cannot_be_resumed(workspace, cli):
    path = write_definition(workspace, {"a": work(block=True), "b": work("a")})
    instance, runner = start_runner(workspace, path)
    try:
        wait_until(lambda: (workspace / "pids" / "a").exists(), "a to start")
        pid = int((workspace / "pids" / "a").read_text())
        cancelled = cli("cancel", instance, "--wait", str(WAIT_LIMIT), "--json")
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert cancelled.exit_code == 0, cancelled
    assert cancelled.json()["state"] == "cancelled"
    wait_until(lambda: not alive(pid), "the cancelled agent to be gone")
    status = cli("status", instance, "--json").json()
    assert {t["state"] for t in status["tasks"].values()} == {"cancelled"}
    resumed = cli("resume", instance)
    assert resumed.exit_code == 2
    assert "cancelled" in resumed.stderr and "cannot be resumed" in resumed.stderr
    assert cli("cancel", instance).exit_code == 2


def test_stop_and_cancel_without_a_live_runner(workspace, cli):
    instance = create(cli, workspace, {"a": work(), "gate": _gate("a")})
    assert cli("stop", instance).exit_code == 2  # created: nothing to stop
    assert cli("start", instance).exit_code == 3  # waits at the gate
    stopped = cli("stop", instance, "--json")
    assert stopped.exit_code == 0, stopped
    assert stopped.json() | {"state": "paused", "requested": False} == stopped.json()
    cancelled = cli("cancel", instance, "--json")
    assert cancelled.json()["state"] == "cancelled"
    assert cli("status", instance, "--json").json()["tasks"]["gate"]["state"] == "cancelled"


def test_help_tells_stop_from_cancel(cli):
    stop_help = cli("stop", "--help").stdout
    cancel_help = cli("cancel", "--help").stdout
    assert "resume" in stop_help and "cancel" in stop_help
    assert "cannot be resumed" in " ".join(cancel_help.split())


def undo(text: str, **extra: Any) -> dict[str, Any]:
    return {"action": "agent_task", "agent_id": "undo", "parameters": {"text": text}, **extra}


def _parent_with_child(workspace: Path, child_tasks: dict[str, Any]) -> Path:
    child = write_definition(workspace, child_tasks, name="child.json")
    trigger = {"action": "workflow_trigger", "parameters": {"template": child.name}}
    return write_definition(workspace, {"spawn": trigger}, name="parent.json")


def test_cancelling_a_parent_cancels_its_running_child_and_kills_its_agent(workspace, cli):
    path = _parent_with_child(workspace, {"a": work(block=True), "b": work("a")})
    instance, runner = start_runner(workspace, path)
    try:
        pid = started_pid(workspace, "a")
        cancelled = cli("cancel", instance, "--wait", str(WAIT_LIMIT), "--json")
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert cancelled.exit_code == 0, cancelled
    wait_until(lambda: not alive(pid), "the child's agent to be gone")
    child = f"{instance}.spawn"
    status = cli("status", child, "--json").json()
    assert status["state"] == "cancelled"
    assert status["reason"] == "cancelled with its parent"
    assert {t["state"] for t in status["tasks"].values()} == {"cancelled"}
    assert cli("status", instance, "--json").json()["state"] == "cancelled"


def test_stopping_a_parent_stops_its_child_and_both_resume(workspace, cli):
    path = _parent_with_child(workspace, {"a": work(block=True), "b": work("a")})
    instance, runner = start_runner(workspace, path)
    try:
        pid = started_pid(workspace, "a")
        stopped = cli("stop", instance, "--grace", "0.1", "--wait", str(WAIT_LIMIT), "--json")
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert stopped.json()["state"] == "paused", stopped
    wait_until(lambda: not alive(pid), "the child's agent to be gone")
    child = f"{instance}.spawn"
    assert cli("status", child, "--json").json()["state"] == "paused"
    (workspace / "release").write_text("")
    assert cli("resume", instance).exit_code == 0
    assert cli("status", child, "--json").json()["state"] == "completed"
    assert [len(effects(workspace, t)) for t in "ab"] == [1, 1]


def test_cancelling_a_parent_with_no_runner_cancels_its_waiting_child(workspace, cli):
    path = _parent_with_child(workspace, {"a": work(), "gate": _gate("a")})
    instance = create_from(cli, path)
    assert cli("start", instance).exit_code == 3  # the child waits for an approval
    child = f"{instance}.spawn"
    assert cli("status", child, "--json").json()["state"] == "waiting"
    assert cli("cancel", instance).exit_code == 0
    status = cli("status", child, "--json").json()
    assert status["state"] == "cancelled"
    assert f"with its parent {instance}" in status["reason"]


def started_pid(workspace: Path, task: str) -> int:
    """The pid of the agent of `task`, once it has started and written it."""
    path = workspace / "pids" / task
    wait_until(lambda: path.exists() and path.read_text().strip() != "", f"{task} to start")
    return int(path.read_text())


def create_from(cli: Callable[..., Result], path: Path) -> str:
    created = cli("create", str(path), "--json")
    assert created.exit_code == 0, created
    return str(created.json()["id"])


def _gate(*deps: str) -> dict[str, Any]:
    return {
        "action": "approval_gate",
        "parameters": {"approvers": ["ana"], "message": "ok?"},
        "dependencies": list(deps),
    }


# -- checkpoints -----------------------------------------------------------------------


def test_checkpoint_kinds_list_show_diff_and_cleanup(workspace, cli):
    tasks = {
        "a": work(),
        "b": {**work("a"), "milestone": True},
        "c": work("b", exit=3),
    }
    instance = create(cli, workspace, tasks, checkpoint_interval=2)
    assert cli("start", instance).exit_code == 1
    manual = cli("checkpoint", instance, "--label", "by hand", "--json")
    assert manual.exit_code == 0, manual
    listed = cli("checkpoints", instance, "--json").json()
    assert [c["kind"] for c in listed] == ["manual", "error", "auto", "milestone", "start"]
    assert listed[0]["label"] == "by hand" and all(c["valid"] for c in listed)
    milestone = listed[-2]["id"]
    shown = cli("checkpoints", "show", instance, milestone, "--json").json()
    assert shown["state"]["tasks"]["b"]["state"] == "completed"
    assert shown["state"]["tasks"]["b"]["output"]["task"] == "b"
    diff = cli("checkpoints", "diff", instance, milestone, listed[0]["id"], "--json")
    assert [d["task"] for d in diff.json()["tasks"]] == ["c"]
    started = cli("checkpoints", "show", instance, listed[-1]["id"], "--json").json()
    assert {t["state"] for t in started["state"]["tasks"].values()} == {"pending"}
    cleaned = cli("checkpoints", "cleanup", instance, "--max-count", "1", "--keep-milestone")
    assert cleaned.exit_code == 0 and "deleted 3 checkpoint(s)" in cleaned.stdout
    assert [c["kind"] for c in cli("checkpoints", instance, "--json").json()] == [
        "manual",
        "milestone",
    ]
    assert cli("checkpoints", "cleanup", "--all", "--max-age-days", "0").exit_code == 0
    assert cli("checkpoints", instance, "--json").json() == []
    assert cli("checkpoints", "cleanup", instance).exit_code == 2  # says nothing to delete


def test_a_damaged_checkpoint_is_shown_and_never_loaded(workspace, cli):
    instance = create(cli, workspace, {"a": {**work(), "milestone": True}, "b": work("a")})
    assert cli("run", "--help").exit_code == 0
    assert cli("start", instance).exit_code == 0
    (path,) = (workspace / "checkpoints" / instance).glob("*-milestone.json")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    listed = cli("checkpoints", instance, "--json").json()
    assert listed[0]["valid"] is False and listed[0]["problem"]
    assert "DAMAGED" in cli("checkpoints", instance).stdout
    number = path.name.split("-")[0]
    shown = cli("checkpoints", "show", instance, number)
    assert shown.exit_code == 5 and "damaged" in shown.stderr
    rolled = cli("rollback", instance, "--checkpoint", number, "--yes")
    assert rolled.exit_code == 5
    assert cli("status", instance, "--json").json()["state"] == "completed"


# -- rollback ------------------------------------------------------------------------


def _pipeline(workspace: Path) -> dict[str, Any]:
    return {
        "a": {
            **work(n=1),
            "milestone": True,
            "compensate": undo("undo a {{ task.output.params.n }}"),
        },
        "b": {**work("a", n=2), "compensate": undo("undo b")},
        "c": work("b", n=3),
    }


def test_rollback_plan_then_rollback_then_resume_reproduces_a_clean_run(workspace, cli):
    instance = create(cli, workspace, _pipeline(workspace))
    assert cli("start", instance).exit_code == 0
    clean = cli("status", instance, "--json").json()["tasks"]
    plan = cli("rollback", instance, "--dry-run", "--json")
    assert plan.exit_code == 0, plan
    planned = plan.json()
    assert planned["checkpoint"]["kind"] == "milestone"
    assert [c["task"] for c in planned["changes"]] == ["b", "c"]
    assert {r["task"] for r in planned["rerun_with_side_effects"]} == {"b", "c"}
    assert planned["compensations"] == ["b"]
    assert not (workspace / "undo.log").exists()  # a dry run changes nothing
    refused = cli("rollback", instance)  # not a terminal and no --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    rolled = cli("rollback", instance, "--yes", "--as", "ops")
    assert rolled.exit_code == 0, rolled
    assert (workspace / "undo.log").read_text() == "undo b\n"
    status = cli("status", instance, "--json").json()
    assert status["state"] == "paused"
    assert [status["tasks"][t]["state"] for t in "abc"] == ["completed", "pending", "pending"]
    assert cli("resume", instance).exit_code == 0
    again = cli("status", instance, "--json").json()["tasks"]
    assert {t: again[t]["output"] for t in "abc"} == {t: clean[t]["output"] for t in "abc"}
    assert [len(effects(workspace, t)) for t in "abc"] == [1, 2, 2]


def test_rolling_back_a_rollback_restores_the_state_before_it(workspace, cli):
    instance = create(cli, workspace, _pipeline(workspace))
    assert cli("start", instance).exit_code == 0
    before = cli("status", instance, "--json").json()["tasks"]
    rolled = cli("rollback", instance, "--yes", "--json").json()
    undo = cli("rollback", instance, "--checkpoint", rolled["pre_rollback_checkpoint"], "--yes")
    assert undo.exit_code == 0, undo
    after = cli("status", instance, "--json").json()["tasks"]
    keys = ("state", "attempts", "output")
    assert {t: [after[t][k] for k in keys] for t in after} == {
        t: [before[t][k] for k in keys] for t in before
    }
    assert types(workspace, instance).count("rolled_back") == 2  # appended, never rewritten


def test_rollback_is_refused_while_a_runner_executes_the_instance(workspace, cli):
    path = write_definition(
        workspace, {"a": {**work(), "milestone": True}, "b": work("a", block=True)}
    )
    instance, runner = start_runner(workspace, path)
    try:
        wait_until(lambda: (workspace / "pids" / "b").exists(), "b to start")
        refused = cli("rollback", instance, "--yes")
        assert refused.exit_code == 4
        assert "stop it first" in refused.stderr
        assert cli("retry", instance, "--task", "a").exit_code == 4
    finally:
        (workspace / "release").write_text("")
        runner.communicate(timeout=WAIT_LIMIT)
    assert runner.returncode == 0


# -- retry, skip, --set ----------------------------------------------------------------


def test_retry_resets_the_failed_task_and_what_it_skipped(workspace, cli):
    instance = create(cli, workspace, {"a": work(), "b": work("a", exit=2), "c": work("b")})
    assert cli("start", instance).exit_code == 1
    plan = cli("retry", instance, "--dry-run", "--json").json()
    assert [(c["task"], c["now"]) for c in plan["reset"]] == [("b", "failed")]  # c: pending
    assert cli("status", instance, "--json").json()["state"] == "failed"
    resume = cli("resume", instance)
    assert resume.exit_code == 2 and "retry" in resume.stderr
    fixed = cli("resume", instance, "--set", "b.exit=0")
    assert fixed.exit_code == 2 and "completed" not in fixed.stderr  # failed: retry first
    assert cli("retry", instance, "--task", "b").exit_code == 0
    assert cli("resume", instance, "--set", "b.exit=0", "--as", "ops").exit_code == 0
    set_event = next(e for e in events(workspace, instance) if e["type"] == "parameter_set")
    assert (set_event["task"], set_event["name"], set_event["value"]) == ("b", "exit", 0)
    assert set_event["by"] == "ops" and set_event["time"]
    assert cli("status", instance, "--json").json()["state"] == "completed"


def test_retry_downstream_runs_completed_tasks_again(workspace, cli):
    instance = create(cli, workspace, {"a": work(), "b": work("a"), "c": work("b")})
    assert cli("start", instance).exit_code == 0
    assert cli("retry", instance).exit_code == 2  # nothing failed
    plan = cli("retry", instance, "--task", "b", "--downstream", "--json")
    assert [c["task"] for c in plan.json()["reset"]] == ["b", "c"]
    assert cli("resume", instance).exit_code == 0
    assert [len(effects(workspace, t)) for t in "abc"] == [1, 2, 2]


def test_skip_lets_the_run_go_on(workspace, cli):
    tasks = {
        "a": {**work(exit=1), "critical": False},  # its dependents are skipped at once
        "b": {**work("a"), "run_if_dependencies_skipped": True},
        "c": work("a"),
    }
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 0
    dry = cli("skip", instance, "--task", "a", "--dry-run", "--json").json()
    assert dry["skip"] == "a" and {c["task"] for c in dry["reset"]} == {"b", "c"}
    assert cli("skip", instance, "--task", "nope").exit_code == 2
    assert cli("skip", instance, "--task", "a").exit_code == 0
    assert cli("resume", instance).exit_code == 0
    tasks_now = cli("status", instance, "--json").json()["tasks"]
    assert [tasks_now[t]["state"] for t in "abc"] == ["skipped", "completed", "skipped"]


def test_set_values_are_data_and_bad_assignments_are_refused(workspace, cli):
    instance = create(cli, workspace, {"a": work(exit=5, text="x")})
    assert cli("start", instance).exit_code == 1
    assert cli("retry", instance).exit_code == 0
    for bad in ("a.exit", "a=1", "z.exit=1", "a.nope=1"):
        result = cli("resume", instance, "--set", bad)
        assert result.exit_code == 2, (bad, result)
    dry = cli("resume", instance, "--set", "a.text={{ 7*7 }}", "--dry-run", "--json")
    assert dry.json()["set"][0]["new"] == "{{ 7*7 }}"
    assert "parameter_set" not in types(workspace, instance)
    ran = cli("resume", instance, "--set", "a.text={{ 7*7 }}", "--set", "a.exit=0")
    assert ran.exit_code == 0, ran
    assert effects(workspace, "a")[-1]["text"] == "{{ 7*7 }}"


# -- compensation and the recovery policy ----------------------------------------------------


def test_a_failed_workflow_compensates_newest_first_and_reports_a_failing_one(workspace, cli):
    tasks = {
        "a": {**work(), "compensate": undo("a")},
        "b": {**work("a"), "compensate": undo("b", retry_count=1, retry_delay=0)},
        "c": {**work("b"), "compensate": undo("c")},
        "d": work("c", exit=1),
    }
    tasks["b"]["compensate"]["parameters"]["fail"] = True
    instance = create(cli, workspace, tasks, on_failure="compensate")
    assert cli("start", instance).exit_code == 1
    assert (workspace / "undo.log").read_text() == "c\na\n"
    status = cli("status", instance, "--json").json()
    assert status["state"] == "failed"
    attempts = [
        (e["task"], e["type"])
        for e in events(workspace, instance)
        if e["type"].startswith("compensation_") and e["type"] != "compensation_started"
    ]
    assert attempts == [
        ("c", "compensation_completed"),
        ("b", "compensation_failed"),
        ("b", "compensation_failed"),
        ("a", "compensation_completed"),
    ]


def test_cancel_of_a_waiting_instance_runs_its_compensations(workspace, cli):
    tasks = {
        "a": {
            **work(),
            "compensate": {
                "action": "file_operation",
                "parameters": {"operation": "write", "path": "undone.txt", "content": "a"},
            },
        },
        "gate": _gate("a"),
    }
    instance = create(cli, workspace, tasks, on_failure="compensate")
    assert cli("start", instance).exit_code == 3
    cancelled = cli("cancel", instance, "--json").json()
    assert cancelled["compensations"] == [
        {"task": "a", "state": "completed", "attempts": 1, "error": None}
    ]
    assert (workspace / "undone.txt").read_text() == "a"


def test_retry_on_limits_retries_to_the_kinds_named(workspace, cli):
    retried = {"retry_count": 2, "retry_delay": 0, "retry_on": ["exit_code:3"]}
    tasks = {"three": {**work(exit=3), **retried}, "four": {**work(exit=4), **retried}}
    instance = create(cli, workspace, tasks, defaults={"critical": False})
    assert cli("start", instance).exit_code == 0
    status = cli("status", instance, "--json").json()["tasks"]
    assert (status["three"]["attempts"], status["four"]["attempts"]) == (3, 1)
    bad = write_definition(workspace, {"a": {**work(), "retry_on": ["http:6xx", "exit_code:x"]}})
    checked = cli("validate", str(bad))
    assert checked.exit_code == 2
    assert "/tasks/a/retry_on/0" in checked.stderr + checked.stdout


def test_on_failure_pause_waits_for_a_person(workspace, cli):
    tasks = {"a": {**work(exit=1), "on_failure": "pause"}, "b": work("a")}
    instance = create(cli, workspace, tasks)
    result = cli("start", instance)
    assert result.exit_code == 1
    assert "retry" in result.stdout and "rollback" in result.stdout
    status = cli("status", instance, "--json").json()
    assert (status["state"], status["tasks"]["a"]["state"]) == ("paused", "failed")
    assert status["tasks"]["b"]["state"] == "pending"
    assert cli("resume", instance).exit_code == 1  # still failed: pauses again
    assert cli("skip", instance, "--task", "a").exit_code == 0
    assert cli("resume", instance).exit_code == 0
    assert cli("status", instance, "--json").json()["tasks"]["b"]["state"] == "skipped"


def test_orphan_agents_of_a_killed_runner_are_ended_on_resume(workspace, cli):
    path = write_definition(workspace, {"a": work(block=True)})
    instance, runner = start_runner(workspace, path)
    wait_until(lambda: (workspace / "pids" / "a").exists(), "a to start")
    pid = int((workspace / "pids" / "a").read_text())
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=WAIT_LIMIT)
    assert alive(pid)  # its own session: it outlives the runner
    (workspace / "pids" / "a").unlink()
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    resumed = subprocess.Popen(
        [sys.executable, "-m", "workflow_cli", "resume", instance],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: not alive(pid), "the orphan to be killed")
        wait_until(lambda: (workspace / "pids" / "a").exists(), "a to run again")
        (workspace / "release").write_text("")
        resumed.communicate(timeout=WAIT_LIMIT)
    finally:
        resumed.kill()
    assert resumed.returncode == 0
    started = next(e for e in events(workspace, instance)[::-1] if e["type"] == "run_started")
    assert started["orphans_killed"] == ["a"]
    assert len(effects(workspace, "a")) == 1


@pytest.mark.parametrize(
    ("entries", "error", "allowed"),
    [
        (["http:5xx"], {"kind": "http_status", "status": 503}, True),
        (["http:5xx"], {"kind": "http_status", "status": 404}, False),
        (["http:429"], {"kind": "http_status", "status": 429}, True),
        (["http:429"], {"kind": "http_status", "status": 430}, False),
        (["timeout"], {"kind": "timeout"}, True),
        (["timeout"], {"kind": "connection"}, False),
        (["exit_code:3"], {"kind": "exit_code", "exit_code": 3}, True),
        (["exit_code:3"], {"kind": "exit_code", "exit_code": 30}, False),
        (["ValueError"], {"kind": "error", "type": "ValueError"}, True),
        (["ValueError"], {"kind": "error", "type": "KeyError"}, False),
        (["connection", "http:502"], {"kind": "connection"}, True),
    ],
)
def test_retry_on_entries(entries, error, allowed):
    from workflow_cli.definition.retry_policy import retry_allowed

    assert retry_allowed(entries, error) is allowed


def test_health_does_not_suggest_resuming_a_child_whose_parent_is_cancelled(workspace, cli):
    path = _parent_with_child(workspace, {"a": work(), "gate": _gate("a")})
    instance = create_from(cli, path)
    assert cli("start", instance).exit_code == 3
    child = f"{instance}.spawn"
    # What an older version left: the parent ended cancelled, the child marked running
    # by a runner that died.
    parent_journal = Journal(workspace / "instances" / instance / "events.jsonl", utc_now)
    parent_journal.append([{"type": "run_ended", "state": "cancelled", "reason": "by hand"}])
    child_journal = Journal(workspace / "instances" / child / "events.jsonl", utc_now)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a runner's pid that no process has any more
    child_journal.append([{"type": "run_started", "pid": gone.pid, "recovered": False}])
    stuck = {s["id"]: s["reason"] for s in cli("health", "--json").json()["stuck"]}
    assert f"its parent {instance} is cancelled" in stuck[child]
    assert f"workflow_cli cancel {child}" in stuck[child]
    assert "resume" not in stuck[child]
