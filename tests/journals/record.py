"""Record the journals that tests/test_replay.py replays.

Each is a real run of the real CLI in a temporary workspace; its ``events.jsonl`` is
copied here with the state its fold gave when it was recorded (``state.json``). The
recordings pin the journal's format and the fold for every later change: a change that
makes an old journal fold differently breaks the replay test, on purpose.

    .venv/bin/python tests/journals/record.py NAME   # record one (refuses to overwrite)

Only record a new journal when a new kind of event or a new way of running needs
pinning; never re-record an existing one to make the test pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "workflow_cli"]

FLAKY_AGENT = """\
import json, sys
sys.stdin.read()
print("no luck this time", file=sys.stderr)
sys.exit(3)
"""


def cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--home", str(home), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def created(home: Path, *args: str) -> str:
    result = cli(home, "create", *args, "--json")
    assert result.returncode == 0, result
    return str(json.loads(result.stdout)["id"])


def definition(home: Path, name: str, tasks: dict[str, Any], **extra: object) -> str:
    path = home / f"{name}.json"
    document = {"id": name, "name": name, "version": "1", "schema_version": "2.0.0", **extra}
    path.write_text(json.dumps({**document, "tasks": tasks}))
    return str(path)


def completed(home: Path) -> str:
    instance = created(home, "sequential_pipeline")
    assert cli(home, "start", instance).returncode == 0
    return instance


def failed_with_retries(home: Path) -> str:
    (home / "flaky.py").write_text(FLAKY_AGENT)
    (home / "agents.yaml").write_text("agents:\n  flaky:\n    command: [python3, flaky.py]\n")
    tasks = {
        "first": {"action": "condition_check", "parameters": {"expression": "1 + 1"}},
        "flaky": {
            "action": "agent_task",
            "agent_id": "flaky",
            "dependencies": ["first"],
            "retry_count": 2,
            "retry_delay": 0.01,
        },
        "after": {
            "action": "condition_check",
            "parameters": {"expression": "2"},
            "dependencies": ["flaky"],
        },
    }
    instance = created(home, definition(home, "flaky_flow", tasks))
    assert cli(home, "start", instance).returncode == 1
    return instance


def rolled_back(home: Path) -> str:
    tasks = {
        "a": {"action": "condition_check", "parameters": {"expression": "1"}, "milestone": True},
        "b": {
            "action": "condition_check",
            "parameters": {"expression": "2"},
            "dependencies": ["a"],
        },
        "gate": {
            "action": "approval_gate",
            "parameters": {"approvers": ["ann"]},
            "dependencies": ["b"],
        },
        "c": {
            "action": "condition_check",
            "parameters": {"expression": "steps.b.output + 1"},
            "dependencies": ["gate"],
        },
    }
    instance = created(home, definition(home, "rollback_flow", tasks))
    assert cli(home, "start", instance).returncode == 3
    assert cli(home, "approve", instance, "--as", "ann", "--comment", "fine").returncode == 0
    assert cli(home, "resume", instance).returncode == 0
    assert cli(home, "rollback", instance, "--checkpoint", "1", "--yes").returncode == 0
    assert cli(home, "resume", instance).returncode == 3
    assert cli(home, "reject", instance, "--as", "ann").returncode == 0
    assert cli(home, "resume", instance).returncode == 1
    assert cli(home, "retry", instance, "--task", "gate").returncode == 0
    assert cli(home, "resume", instance).returncode == 3
    assert cli(home, "approve", instance, "--as", "ann").returncode == 0
    assert cli(home, "resume", instance).returncode == 0
    return instance


def crashed_mid_run(home: Path) -> str:
    tasks = {
        f"t{i}": {
            "action": "agent_task",
            "agent_id": "echo",
            "parameters": {"i": i},
            "dependencies": [f"t{i - 1}"] if i else [],
        }
        for i in range(6)
    }
    instance = created(home, definition(home, "crash_flow", tasks))
    killed = cli(home, "start", instance, env={"WORKFLOW_CLI_KILL_AFTER_APPEND": "5"})
    assert killed.returncode == -9, killed
    assert cli(home, "resume", instance).returncode == 0
    return instance


ITEM_AGENT = """\
import json, os, sys
index = json.load(sys.stdin)["index"]
if os.path.exists(f"broken-{index}") or (index == 1 and os.environ["WORKFLOW_ATTEMPT"] == "1"):
    print(f"item {index} failed", file=sys.stderr)
    sys.exit(3)
print(json.dumps({"index": index}))
"""


def for_each_and_repeat(home: Path) -> str:
    """Items from a step, one retried, one failed for good then retried alone; a loop."""
    (home / "items.py").write_text(ITEM_AGENT)
    (home / "agents.yaml").write_text("agents:\n  items:\n    command: [python3, items.py]\n")
    (home / "broken-3").touch()
    tasks = {
        "split": {"action": "condition_check", "parameters": {"expression": "[10, 20, 30, 40]"}},
        "each": {
            "action": "agent_task",
            "agent_id": "items",
            "dependencies": ["split"],
            "for_each": "{{ steps.split.output }}",
            "max_parallel": 2,
            "retry_count": 1,
            "retry_delay": 0.01,
            "conditions": ["item != 30"],
            "parameters": {"index": "{{ index }}", "value": "{{ item }}"},
        },
        "loop": {
            "action": "condition_check",
            "dependencies": ["each"],
            "parameters": {"expression": "iteration * 2"},
            "repeat": {"until": "output >= 4", "max_iterations": 5},
        },
    }
    instance = created(home, definition(home, "fan_flow", tasks))
    assert cli(home, "start", instance).returncode == 1
    (home / "broken-3").unlink()
    assert cli(home, "retry", instance, "--task", "each", "--item", "3").returncode == 0
    assert cli(home, "resume", instance).returncode == 0
    return instance


def approval_escalated(home: Path) -> str:
    """A gate whose deadline passes with no process alive: `tick` escalates it (and
    records a reminder), the escalated approver decides, the run goes on."""
    now = home / "now.txt"
    env = {"WORKFLOW_CLI_NOW": f"@{now}"}
    now.write_text("2026-03-02T09:00:00+00:00")
    tasks = {
        "gate": {
            "action": "approval_gate",
            "parameters": {
                "approvers": ["ann", "ben"],
                "required": 2,
                "message": "ship it?",
                "timeout_seconds": 60,
                "escalate_to": ["dan"],
                "remind_every_seconds": 50,
                "on_timeout": "reject",
            },
        },
        "after": {
            "action": "condition_check",
            "parameters": {"expression": "steps.gate.output.by"},
            "dependencies": ["gate"],
        },
    }
    made = cli(home, "create", definition(home, "escalation_flow", tasks), "--as", "ann", env=env)
    assert made.returncode == 0, made
    instance = made.stdout.strip()
    assert cli(home, "start", instance, env=env).returncode == 3
    assert cli(home, "approve", instance, "--as", "ben", env=env).returncode == 0
    now.write_text("2026-03-02T09:01:01+00:00")
    assert cli(home, "tick", env=env).returncode == 0
    assert cli(home, "reassign", instance, "--to", "eve", "--as", "dan", env=env).returncode == 0
    approve = cli(home, "approve", instance, "--as", "eve", "--comment", "go", env=env)
    assert approve.returncode == 0, approve
    assert cli(home, "resume", instance, env=env).returncode == 0
    return instance


def mailbox_delivered(home: Path) -> str:
    tasks = {
        "review": {
            "action": "agent_task",
            "agent_id": "reviewer",
            "parameters": {"report": "q3.txt"},
            "output_schema": {"type": "object", "required": ["approved"]},
            "retry_count": 1,
            "retry_delay": 0,
        },
        "after": {
            "action": "condition_check",
            "parameters": {"expression": "steps.review.output.approved"},
            "dependencies": ["review"],
        },
    }
    instance = created(home, definition(home, "mailbox_flow", tasks))
    assert cli(home, "start", instance).returncode == 3
    error = ["--as", "reviewer", "--error", "cannot open q3.txt"]
    assert cli(home, "deliver", instance, "review", *error).returncode == 0
    assert cli(home, "resume", instance).returncode == 3
    outbox = home / "agents" / "reviewer" / "outbox"
    (outbox / "answer.tmp").write_text(json.dumps({"output": {"approved": True}}))
    os.replace(outbox / "answer.tmp", outbox / f"{instance}.review.json")
    assert cli(home, "resume", instance).returncode == 0
    return instance


def on_dask(home: Path) -> str:
    """A run on a local Dask cluster: each attempt's worker on its events."""
    (home / "flaky.py").write_text(FLAKY_AGENT)
    (home / "agents.yaml").write_text("agents:\n  flaky:\n    command: [python3, flaky.py]\n")
    tasks = {
        "echoed": {"action": "agent_task", "agent_id": "echo", "parameters": {"n": 1}},
        "flaky": {
            "action": "agent_task",
            "agent_id": "flaky",
            "dependencies": ["echoed"],
            "retry_count": 1,
            "retry_delay": 0.01,
        },
    }
    instance = created(home, definition(home, "dask_flow", tasks))
    assert cli(home, "start", instance, "--executor", "local-dask").returncode == 1
    return instance


def signals(home: Path) -> str:
    """Event waits: a signal sent before its wait is kept and taken when the wait begins,
    one that no filter matches stays pending, a wait times out (`tick`, on_timeout:
    continue), and a signal sent while a wait waits is taken at once."""
    now = home / "now.txt"
    env = {"WORKFLOW_CLI_NOW": f"@{now}", "USER": "recorder"}
    now.write_text("2026-03-02T09:00:00+00:00")
    paid = "event.data.order_id == params.order_id"
    tasks = {
        "early": {"action": "wait_for_event", "parameters": {"event": "go"}},
        "late": {
            "action": "wait_for_event",
            "parameters": {"event": "paid", "timeout_seconds": 60, "on_timeout": "continue"},
            "dependencies": ["early"],
        },
        "filtered": {
            "action": "wait_for_event",
            "parameters": {"event": "paid", "filter": paid},
            "dependencies": ["late"],
        },
    }
    flow = definition(home, "signal_flow", tasks, params={"order_id": 42})
    instance = created(home, flow, "--as", "ann")
    for event, data in (("go", '{"n": 1}'), ("other", '{"n": 2}')):
        sent = cli(home, "signal", instance, event, "--data", data, "--as", "sam", env=env)
        assert sent.returncode == 0, sent
    assert cli(home, "start", instance, env=env).returncode == 3  # early took go; late waits
    now.write_text("2026-03-02T09:01:01+00:00")
    assert cli(home, "tick", "--resume", env=env).returncode == 0  # late times out; waits
    wrong = cli(home, "signal", instance, "paid", "--data", '{"order_id": 1}', env=env)
    assert wrong.returncode == 0, wrong
    right = ["--data", '{"order_id": 42}', "--as", "bill"]
    assert cli(home, "signal", instance, "paid", *right, env=env).returncode == 0
    assert cli(home, "resume", instance, env=env).returncode == 0
    return instance


RECORDINGS: dict[str, Callable[[Path], str]] = {
    "signals": signals,
    "for_each_and_repeat": for_each_and_repeat,
    "approval_escalated": approval_escalated,
    "completed": completed,
    "failed_with_retries": failed_with_retries,
    "rolled_back": rolled_back,
    "crashed_mid_run": crashed_mid_run,
    "mailbox_delivered": mailbox_delivered,
    "on_dask": on_dask,
}


def main() -> None:
    from workflow_cli.store.journal import Journal
    from workflow_cli.store.state import fold

    for name in sys.argv[1:]:
        target = HERE / name
        if target.exists():
            sys.exit(f"{target} exists; recordings are never overwritten")
        with tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            instance = RECORDINGS[name](home)
            journal = home / "instances" / instance / "events.jsonl"
            state = fold(Journal(journal, lambda: None).read_new())  # type: ignore[arg-type,return-value]
            target.mkdir()
            shutil.copy(journal, target / "events.jsonl")
            text = json.dumps(state, indent=2, ensure_ascii=False, sort_keys=True)
            (target / "state.json").write_text(text + "\n")
        print(f"recorded {name}")


if __name__ == "__main__":
    main()
