"""for_each fan-out through the real CLI: items from an earlier step, item and index in
parameters and conditions, per-item retries, outputs in order, max_parallel (read from
the recorded events), a real ``kill -9`` in the middle and a resume that never runs a
completed item again, ``retry --item``, and the dead letters a failed item leaves.

The command agent appends one line (the item's index) to ``effects.log`` each time it
runs, so the tests count how often each item really ran.
"""

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
from conftest import Result, write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.store.journal import Journal

AGENT = '''\
"""Test agent: records the item it ran, fails when told to, prints JSON."""
import json, os, sys, time

params = json.load(sys.stdin)
index = params["index"]
time.sleep(float(os.environ.get("AGENT_SLEEP", "0")))
fd = os.open("effects.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
try:
    os.write(fd, f"{index}\\n".encode())
finally:
    os.close(fd)
attempt = int(os.environ["WORKFLOW_ATTEMPT"])
if index in params.get("flaky", []) and attempt == 1:
    sys.exit(3)
if os.path.exists(f"broken-{index}"):
    print(f"item {index} is broken", file=sys.stderr)
    sys.exit(4)
print(json.dumps({"index": index, "double": params["value"] * 2, "attempt": attempt}))
'''

POLL = 0.01
WAIT_LIMIT = 60.0


@pytest.fixture
def agent(workspace: Path) -> Path:
    script = workspace / "agent.py"
    script.write_text(AGENT, encoding="utf-8")
    agents = {"agents": {"counter": {"command": [sys.executable, str(script)]}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents), encoding="utf-8")
    return script


def fan_out(count: int, **each: Any) -> dict[str, Any]:
    """split (the list 0..count-1 times 10) → each (the counter agent per item) → total."""
    return {
        "split": {
            "action": "condition_check",
            "parameters": {"expression": f"range({count}) | map('int') | list"},
        },
        "each": {
            "action": "agent_task",
            "agent_id": "counter",
            "dependencies": ["split"],
            "for_each": "{{ steps.split.output }}",
            "parameters": {"value": "{{ item * 10 }}", "index": "{{ index }}"},
            **each,
        },
        "total": {
            "action": "condition_check",
            "dependencies": ["each"],
            "parameters": {"expression": "steps.each.output | map(attribute='double') | sum"},
        },
    }


def effects(workspace: Path) -> dict[int, int]:
    path = workspace / "effects.log"
    counts: dict[int, int] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        counts[int(line)] = counts.get(int(line), 0) + 1
    return counts


def journal(workspace: Path, instance: str) -> list[dict[str, Any]]:
    return Journal(workspace / "instances" / instance / "events.jsonl", utc_now).read_new()


def max_running(events: list[dict[str, Any]], task: str) -> int:
    """The most items of `task` in flight at once, by the journal's order."""
    running = peak = 0
    for event in events:
        if event.get("task") != task:
            continue
        if event["type"] == "item_started":
            running += 1
            peak = max(peak, running)
        elif event["type"] in ("item_completed", "item_failed", "item_retrying"):
            running -= 1
    return peak


def run_definition(cli: Callable[..., Result], path: Path, *args: str) -> tuple[str, Result]:
    created = cli("create", str(path), "--json")
    assert created.exit_code == 0, created
    instance: str = created.json()["id"]
    return instance, cli("start", instance, *args)


def test_for_each_over_a_previous_step_keeps_order_and_max_parallel(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    path = write_definition(workspace, fan_out(12, max_parallel=3))
    instance, ran = run_definition(cli, path, "--max-workers", "8")
    assert ran.exit_code == 0, ran
    state = cli("status", instance, "--json").json()
    each = state["tasks"]["each"]
    assert each["state"] == "completed"
    assert [o["index"] for o in each["output"]] == list(range(12))
    assert [o["double"] for o in each["output"]] == [i * 20 for i in range(12)]
    assert state["tasks"]["total"]["output"] == sum(i * 20 for i in range(12))
    assert each["items"] == {"total": 12, "done": 12, "completed": 12, "failed": 0, "skipped": 0}
    assert effects(workspace) == dict.fromkeys(range(12), 1)
    events = journal(workspace, instance)
    assert max_running(events, "each") == 3  # three start at once, never a fourth
    planned = [e for e in events if e["type"] == "items_planned"]
    assert len(planned) == 1 and planned[0]["items"] == list(range(12))
    text = cli("status", instance)
    assert "12/12 items" in text.stdout


def test_items_are_retried_one_by_one(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    tasks = fan_out(6, retry_count=2, retry_delay=0)
    tasks["each"]["parameters"]["flaky"] = [1, 4]
    instance, ran = run_definition(cli, write_definition(workspace, tasks))
    assert ran.exit_code == 0, ran
    events = journal(workspace, instance)
    retried = sorted(e["index"] for e in events if e["type"] == "item_retrying")
    assert retried == [1, 4]
    output = cli("status", instance, "--json").json()["tasks"]["each"]["output"]
    assert [o["attempt"] for o in output] == [1, 2, 1, 1, 2, 1]
    assert effects(workspace) == {0: 1, 1: 2, 2: 1, 3: 1, 4: 2, 5: 1}


def test_a_failed_item_is_a_dead_letter_and_retry_item_runs_it_alone(
    workspace: Path, agent: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the status table on one line per task
    (workspace / "broken-2").touch()
    instance, ran = run_definition(cli, write_definition(workspace, fan_out(5)))
    assert ran.exit_code == 1, ran
    state = cli("status", instance, "--json").json()
    each = state["tasks"]["each"]
    assert each["state"] == "failed"
    assert each["error"]["kind"] == "items" and each["error"]["failed_items"] == [2]
    assert "1 of 5 items failed; item 2" in each["error"]["message"]
    assert state["tasks"]["total"]["state"] == "pending"  # the run failed first
    assert effects(workspace) == dict.fromkeys(range(5), 1)  # the others all ran
    assert "5/5 items (1 failed)" in cli("status", instance).stdout

    failures = cli("failures", "--json")
    assert failures.exit_code == 0, failures
    [letter] = failures.json()
    assert letter["instance"] == instance and letter["task"] == "each" and letter["item"] == 2
    assert letter["inputs"] == {"value": 20, "index": 2}
    assert letter["error"]["kind"] == "exit_code" or "exit" in letter["error"]["message"]
    assert letter["retry"] == f"workflow_cli retry {instance} --task each --item 2"
    listed = cli("failures")
    assert "each[2]" in listed.stdout and "--item 2" in listed.stdout

    account = cli("debug", instance, "each", "--json").json()["tasks"][0]
    assert account["items"]["failed_items"][0]["index"] == 2
    assert account["parameters"] == {"value": 20, "index": 2}  # as for the failed item
    commands = [step["command"] for step in account["next"]]
    assert f"workflow_cli retry {instance} --task each --item 2" in commands
    text = cli("debug", instance, "each").stdout
    assert "item 2: failed after 1 attempt(s)" in text

    (workspace / "broken-2").unlink()
    retried = cli("retry", instance, "--task", "each", "--item", "2", "--json")
    assert retried.exit_code == 0, retried
    assert retried.json()["items"] == {"each": [2]}
    resumed = cli("resume", instance)
    assert resumed.exit_code == 0, resumed
    assert effects(workspace) == {0: 1, 1: 1, 2: 2, 3: 1, 4: 1}  # only item 2 again
    final = cli("status", instance, "--json").json()
    assert final["state"] == "completed"
    assert [o["index"] for o in final["tasks"]["each"]["output"]] == list(range(5))
    assert final["tasks"]["total"]["output"] == sum(i * 20 for i in range(5))
    assert cli("failures", "--json").json() == []

    again = cli("retry", instance, "--task", "each", "--item", "0")  # a completed item
    assert again.exit_code == 0, again
    assert cli("resume", instance).exit_code == 0
    assert effects(workspace)[0] == 2 and effects(workspace)[1] == 1


def test_retry_item_refuses_what_it_cannot_do(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    instance, ran = run_definition(cli, write_definition(workspace, fan_out(3)))
    assert ran.exit_code == 0, ran
    missing = cli("retry", instance, "--task", "each", "--item", "3")
    assert missing.exit_code != 0 and "has no item 3" in missing.stderr
    plain = cli("retry", instance, "--task", "split", "--item", "0")
    assert plain.exit_code == 2 and "for_each" in plain.stderr
    alone = cli("retry", instance, "--item", "0")
    assert alone.exit_code == 2 and "--task" in alone.stderr


def test_item_conditions_skip_items_and_leave_null_in_the_output(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    tasks = fan_out(6, conditions=["index % 2 == 0", "params.go"])
    tasks["total"]["parameters"]["expression"] = "steps.each.output | select | list | length"
    path = write_definition(workspace, tasks, params={"go": True})
    instance, ran = run_definition(cli, path)
    assert ran.exit_code == 0, ran
    state = cli("status", instance, "--json").json()
    output = state["tasks"]["each"]["output"]
    assert [o and o["index"] for o in output] == [0, None, 2, None, 4, None]
    assert state["tasks"]["each"]["items"]["skipped"] == 3
    assert state["tasks"]["total"]["output"] == 3
    assert effects(workspace) == {0: 1, 2: 1, 4: 1}


def test_a_for_each_that_is_not_a_list_fails_clearly(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    tasks = {
        "split": {"action": "condition_check", "parameters": {"expression": "{'a': 1}"}},
        "each": {
            "action": "condition_check",
            "dependencies": ["split"],
            "for_each": "{{ steps.split.output }}",
            "parameters": {"expression": "item"},
        },
    }
    instance, ran = run_definition(cli, write_definition(workspace, tasks))
    assert ran.exit_code == 1, ran
    error = cli("status", instance, "--json").json()["tasks"]["each"]["error"]
    assert error["message"] == "for_each: expected a list, got dict"


def test_an_empty_list_completes_with_an_empty_output(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    tasks = {
        "each": {
            "action": "condition_check",
            "for_each": [],
            "parameters": {"expression": "item"},
        }
    }
    instance, ran = run_definition(cli, write_definition(workspace, tasks))
    assert ran.exit_code == 0, ran
    assert cli("status", instance, "--json").json()["tasks"]["each"]["output"] == []


@pytest.mark.parametrize(
    ("task", "pointer", "message"),
    [
        (
            {"action": "condition_check", "parameters": {"expression": "item > 1"}},
            "/tasks/t/parameters/expression",
            "only a for_each task",
        ),
        (
            {"action": "condition_check", "for_each": "a list", "parameters": {"expression": "1"}},
            "/tasks/t/for_each",
            "one expression giving a list",
        ),
        (
            {
                "action": "condition_check",
                "for_each": "{{ item }}",
                "parameters": {"expression": "1"},
            },
            "/tasks/t/for_each",
            "cannot read item",
        ),
        (
            {"action": "condition_check", "max_parallel": 2, "parameters": {"expression": "1"}},
            "/tasks/t/max_parallel",
            "only to a for_each task",
        ),
        (
            {
                "action": "condition_check",
                "for_each": "{{ steps.other.output }}",
                "parameters": {"expression": "1"},
            },
            "/tasks/t/for_each",
            "does not depend on",
        ),
    ],
)
def test_validate_names_misused_for_each(
    workspace: Path, cli: Callable[..., Result], task: dict[str, Any], pointer: str, message: str
) -> None:
    other = {"action": "condition_check", "parameters": {"expression": "[1]"}}
    path = write_definition(workspace, {"t": task, "other": other})
    checked = cli("validate", str(path), "--json")
    assert checked.exit_code == 2, checked
    problems = checked.json()["problems"]
    assert any(p["pointer"] == pointer and message in p["message"] for p in problems), problems


def _start(workspace: Path, instance: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WORKFLOW_HOME": str(workspace), "AGENT_SLEEP": "0.02"}
    return subprocess.Popen(
        [sys.executable, "-m", "workflow_cli", "start", instance, "--max-workers", "4"],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_kill_9_in_the_middle_then_resume_never_reruns_a_completed_item(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    count = 200
    path = write_definition(workspace, fan_out(count, max_parallel=4))
    created = cli("create", str(path), "--json")
    instance = created.json()["id"]
    runner = _start(workspace, instance)
    deadline = time.monotonic() + WAIT_LIMIT
    completed: set[int] = set()
    for _ in range(int(WAIT_LIMIT / POLL)):
        events = journal(workspace, instance)
        completed = {e["index"] for e in events if e["type"] == "item_completed"}
        if len(completed) >= 60 or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    assert runner.returncode == -signal.SIGKILL
    events = journal(workspace, instance)
    done_at_kill = {e["index"] for e in events if e["type"] == "item_completed"}
    assert 60 <= len(done_at_kill) < count, len(done_at_kill)
    assert cli("status", instance, "--json").json()["state"] == "running"  # a dead runner

    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    resumed = subprocess.run(
        [sys.executable, "-m", "workflow_cli", "resume", instance],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = cli("status", instance, "--json").json()
    assert final["state"] == "completed"
    assert [o["index"] for o in final["tasks"]["each"]["output"]] == list(range(count))
    ran = effects(workspace)
    assert set(ran) == set(range(count))
    assert all(ran[i] == 1 for i in done_at_kill), {i: ran[i] for i in done_at_kill if ran[i] != 1}
    assert all(ran[i] <= 2 for i in ran)  # in flight at the kill: at most once more
    all_events = journal(workspace, instance)
    second_run = all_events[len(events) :]
    rerun = {e["index"] for e in second_run if e["type"] == "item_started"}
    assert rerun.isdisjoint(done_at_kill)
    assert max_running(second_run, "each") <= 4


def test_ten_thousand_inline_items(workspace: Path, cli: Callable[..., Result]) -> None:
    """10,000 items of a condition_check: every output kept in order (the benchmark,
    bench/bench_foreach.py, measures time, memory and journal size)."""
    tasks = {
        "each": {
            "action": "condition_check",
            "for_each": "{{ range(10000) | list }}",
            "parameters": {"expression": "item * 2"},
        },
        "check": {
            "action": "condition_check",
            "dependencies": ["each"],
            "parameters": {"expression": "steps.each.output == range(0, 20000, 2) | list"},
        },
    }
    instance, ran = run_definition(cli, write_definition(workspace, tasks))
    assert ran.exit_code == 0, ran
    state = cli("status", instance, "--json").json()
    assert state["tasks"]["check"]["output"] is True
    assert state["tasks"]["each"]["items"]["completed"] == 10000


def test_the_readme_example_runs(workspace: Path, cli: Callable[..., Result]) -> None:
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Fan-out: for_each") :]
    found = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert found is not None
    (workspace / "partitions.yaml").write_text(found.group(1))
    ran = cli("run", "partitions.yaml", "--json")
    assert ran.exit_code == 0, ran
    state = cli("status", ran.json()["id"], "--json").json()
    assert [o["count"] for o in state["tasks"]["each"]["output"]] == [1, 1, 1]
    assert state["tasks"]["combine"]["state"] == "completed"


def test_stop_in_the_middle_then_resume_runs_each_item_once(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    count = 40
    path = write_definition(workspace, fan_out(count, max_parallel=2))
    instance = cli("create", str(path), "--json").json()["id"]
    runner = _start(workspace, instance)
    deadline = time.monotonic() + WAIT_LIMIT
    for _ in range(int(WAIT_LIMIT / POLL)):
        done = [e for e in journal(workspace, instance) if e["type"] == "item_completed"]
        if len(done) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    stopped = cli("stop", instance, "--json")
    assert stopped.exit_code == 0, stopped
    runner.wait(timeout=WAIT_LIMIT)
    assert runner.returncode == 130
    paused = cli("status", instance, "--json").json()
    assert paused["state"] == "paused"
    each = paused["tasks"]["each"]
    assert each["state"] == "pending"
    assert 5 <= each["items"]["completed"] < count
    assert each["items"]["done"] == each["items"]["completed"]  # in flight ones finished
    resumed = cli("resume", instance)
    assert resumed.exit_code == 0, resumed
    assert effects(workspace) == dict.fromkeys(range(count), 1)
    final = cli("status", instance, "--json").json()
    assert [o["index"] for o in final["tasks"]["each"]["output"]] == list(range(count))


def test_each_item_triggers_a_child_workflow_of_its_own(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    child = {
        "name": "double",
        "description": "doubles n",
        "parameters": {"n": {"type": "integer", "required": True}},
        "workflow": {
            "id": "double",
            "name": "double",
            "version": "1",
            "schema_version": "2.0.0",
            "params": {"n": "{{ n }}"},
            "tasks": {
                "twice": {
                    "action": "condition_check",
                    "parameters": {"expression": "params.n * 2"},
                }
            },
        },
    }
    (workspace / "templates").mkdir()
    (workspace / "templates" / "double.json").write_text(json.dumps(child))
    tasks = {
        "each": {
            "action": "workflow_trigger",
            "for_each": [3, 5, 7],
            "parameters": {"template": "double", "params": {"n": "{{ item }}"}},
        }
    }
    instance, ran = run_definition(cli, write_definition(workspace, tasks))
    assert ran.exit_code == 0, ran
    state = cli("status", instance, "--json").json()
    output = state["tasks"]["each"]["output"]
    assert [o["outputs"]["twice"] for o in output] == [6, 10, 14]
    assert [o["child_instance"] for o in output] == [f"{instance}.each.{i}" for i in range(3)]
    assert state["children"] == {f"each.{i}": f"{instance}.each.{i}" for i in range(3)}


def test_item_ends_share_an_fsync_a_second_apart_and_a_task_end_is_synced_when_asked(
    workspace: Path,
) -> None:
    """Group commit: an item's completion is written at once but fsynced with the next
    write a second or more after the last fsync; a task's end waits for what acts on it."""
    from test_run_costs import make_recorder

    from workflow_cli.store import events as ev
    from workflow_cli.store.state import fold

    now = [100.0]
    recorder, _, synced = make_recorder(workspace, now, ("t",))
    assert len(synced) == 1  # run_started
    recorder.write([ev.items_planned("t", [1, 2, 3]), ev.task_started("t", 1)])
    assert len(synced) == 2  # items_planned is durable
    recorder.write([ev.item_started("t", 0, 1), ev.item_completed("t", 0, 1, 0.1, "a")])
    now[0] += 0.5
    recorder.write([ev.item_completed("t", 1, 1, 0.1, "b")])
    assert len(synced) == 2  # written, not yet synced
    journal = recorder.journal
    assert len(Journal(journal.path, utc_now).read_new()) == journal.last_seq  # all on file
    now[0] += 0.6
    recorder.write([ev.item_skipped("t", 2, "condition is false")])
    assert len(synced) == 3  # a second since the last fsync
    recorder.write([ev.task_completed("t", 1, 0.3, ["a", "b", None])])
    assert len(synced) == 3  # a task's end waits for what acts on it
    recorder.flush(sync=True)  # a task that depends on it is about to start
    assert len(synced) == 4
    assert fold(Journal(journal.path, utc_now).read_new())["tasks"]["t"]["state"] == "completed"


def test_items_reuse_cached_outputs_item_by_item(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    path = write_definition(workspace, fan_out(4, cache=True))
    first, ran = run_definition(cli, path)
    assert ran.exit_code == 0, ran
    (workspace / "effects.log").unlink()
    tasks = fan_out(5, cache=True)  # items 0..3 as before, and a new one
    second, ran = run_definition(cli, write_definition(workspace, tasks, name="wf2.json"))
    assert ran.exit_code == 0, ran
    assert effects(workspace) == {4: 1}  # only the new item ran
    events = journal(workspace, second)
    cached: dict[int, Any] = {
        e["index"]: e.get("cached") for e in events if e["type"] == "item_completed"
    }
    assert sorted(i for i, origin in cached.items() if origin) == [0, 1, 2, 3]
    assert cached[2]["instance"] == first and cached[2]["task"] == "each.2"
    output = cli("status", second, "--json").json()["tasks"]["each"]["output"]
    assert [o["double"] for o in output] == [0, 20, 40, 60, 80]


SLOW_AGENT = '''\
"""Test agent: a Python callable that ignores its timeout for one item."""
import time


def slow(parameters):
    if parameters["index"] == 1:
        time.sleep(6)
    return {"index": parameters["index"]}
'''


def test_an_item_past_its_timeout_is_given_up_on_alone(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    (workspace / "slow_agent.py").write_text(SLOW_AGENT)
    agents = {"agents": {"slow": {"callable": "slow_agent:slow"}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents))
    tasks = {
        "each": {
            "action": "agent_task",
            "agent_id": "slow",
            "for_each": [0, 1, 2],
            "timeout_seconds": 0.2,
            "parameters": {"index": "{{ index }}"},
        }
    }
    instance, ran = run_definition(cli, write_definition(workspace, tasks))
    assert ran.exit_code == 1, ran
    each = cli("status", instance, "--json").json()["tasks"]["each"]
    assert each["items"] == {"total": 3, "done": 3, "completed": 2, "failed": 1, "skipped": 0}
    assert each["error"]["failed_items"] == [1]
    [failed] = [e for e in journal(workspace, instance) if e["type"] == "item_failed"]
    assert failed["error"]["kind"] == "timeout" and "abandoned" in failed["error"]["message"]


def test_cancel_in_the_middle_cancels_the_task_and_its_items_in_flight(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    path = write_definition(workspace, fan_out(40, max_parallel=2))
    instance = cli("create", str(path), "--json").json()["id"]
    runner = _start(workspace, instance)
    deadline = time.monotonic() + WAIT_LIMIT
    for _ in range(int(WAIT_LIMIT / POLL)):
        done = [e for e in journal(workspace, instance) if e["type"] == "item_completed"]
        if len(done) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    cancelled = cli("cancel", instance)
    assert cancelled.exit_code == 0, cancelled
    runner.wait(timeout=WAIT_LIMIT)
    state = cli("status", instance, "--json").json()
    assert state["state"] == "cancelled"
    assert state["tasks"]["each"]["state"] == "cancelled"
    assert state["tasks"]["total"]["state"] == "cancelled"
    assert 3 <= state["tasks"]["each"]["items"]["completed"] < 40
    events = journal(workspace, instance)
    [ended] = [i for i, e in enumerate(events) if e["type"] == "task_cancelled"][:1]
    assert all(e["type"] != "item_started" for e in events[ended:])  # none after the cancel
