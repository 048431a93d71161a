"""The Python API (workflow_cli.api): the README's example, each operation, its errors
(the CLI's), detached runners and the async twins."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result
from gated import WAIT_LIMIT, release, write_gated_template, write_review_template

from workflow_cli import api
from workflow_cli.errors import (
    LockHeldError,
    NotFoundError,
    OutputRejectedError,
    ParameterError,
    StateError,
    UsageError,
    WorkflowCliError,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def journal(workspace: Path, instance: str) -> list[dict[str, Any]]:
    path = workspace / "instances" / instance / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def readme_example() -> str:
    section = README.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```python\n")
    assert len(blocks) == 2, "the Python API section has one python example"
    return blocks[1].split("```", 1)[0]


def test_readme_example_runs(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = readme_example()
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    assert "{'done': 3, 'total': 3, 'completed': 3}" in printed
    assert "'mallory' may not decide 'level2_approval' (approvers: director)" in printed
    assert "['completed', 'completed']" in printed
    ws = api.Workspace(workspace)
    chain = ws.list(template="approval_chain")[0]["id"]
    decisions = [(a["task"], a["by"]) for a in ws.status(chain)["approvals"]]
    assert decisions == [("level1_approval", "team_lead"), ("level2_approval", "director")]
    assert ws.status(chain)["requester"] == "alex"


def test_create_takes_typed_values_or_key_value_texts(workspace: Path) -> None:
    ws = api.Workspace(workspace)
    typed = ws.create("approval_chain", {"amount": 1800, "level1_approvers": ["ana"]})
    texts = ws.create("approval_chain", ["amount=1800", 'level1_approvers=["ana"]'])
    for instance in (typed, texts):
        params = ws.status(instance)["params"]
        assert params["amount"] == 1800 and params["level1_approvers"] == ["ana"]
    assert ws.status(typed)["requester"] is None
    assert journal(workspace, typed)[0].get("requester") is None


def test_errors_are_the_clis(workspace: Path, cli: Callable[..., Result]) -> None:
    ws = api.Workspace(workspace)
    with pytest.raises(ParameterError) as raised:
        ws.create("approval_chain", ["amount=much"])
    by_cli = cli("create", "approval_chain", "-p", "amount=much")
    assert by_cli.exit_code == 2
    assert by_cli.stderr == f"error: {raised.value.message}\n"
    with pytest.raises(ParameterError, match="parameter 'amount': expects number, got \"much\""):
        ws.create("approval_chain", {"amount": "much"})
    with pytest.raises(ParameterError, match="unknown for template 'approval_chain'"):
        ws.create("approval_chain", {"amout": 1})
    with pytest.raises(NotFoundError) as missing:
        ws.status("nothing-here")
    assert f"error: {missing.value.message}" in cli("status", "nothing-here").stderr
    with pytest.raises(UsageError):
        ws.list(state="sleeping")
    with pytest.raises(NotFoundError, match="unknown template"):
        ws.create("../approval_chain.json", allow_files=False)
    assert not (workspace / "instances").exists() or not any((workspace / "instances").iterdir())


def test_run_status_list_and_the_cli_agree(workspace: Path, cli: Callable[..., Result]) -> None:
    ws = api.Workspace(workspace)
    first = ws.create("sequential_pipeline", requester="ops")
    result = ws.run(first)
    assert (result.id, result.state, result.exit_code, result.waiting) == (
        first,
        "completed",
        0,
        {},
    )
    second = ws.create("approval_chain")
    # Rows are kept between calls and read again when a journal grows.
    assert [r["id"] for r in ws.list(state="created")] == [second]
    waiting = ws.run(second)
    assert (waiting.state, waiting.exit_code) == ("waiting", 3)
    assert list(waiting.waiting) == ["level1_approval"]
    assert waiting.waiting["level1_approval"]["approvers"] == ["team_lead"]
    assert ws.status(first) == cli("status", first, "--json").json()
    listed = cli("list", "--json", "--asc").json()  # the CLI's rows have more columns
    assert [(r["id"], r["state"]) for r in ws.list()] == [(r["id"], r["state"]) for r in listed]
    assert [r["id"] for r in ws.list(newest_first=True)] == [second, first]
    assert [r["id"] for r in ws.list(state="waiting")] == [second]
    assert [r["id"] for r in ws.list(template="sequential_pipeline")] == [first]
    assert ws.list(limit=1, newest_first=True)[0]["id"] == second
    assert [(a["instance"], a["task"]) for a in ws.approvals()] == [(second, "level1_approval")]
    assert journal(workspace, first)[0]["requester"] == "ops"
    names = {t["name"] for t in ws.templates()}
    assert {"sequential_pipeline", "approval_chain"} <= names


def test_approve_reject_and_their_refusals(workspace: Path) -> None:
    ws = api.Workspace(workspace)
    instance = ws.create("approval_chain")
    with pytest.raises(StateError, match="has no task waiting"):
        ws.approve(instance, by="team_lead")
    ws.run(instance)
    with pytest.raises(UsageError, match="'eve' may not decide 'level1_approval'"):
        ws.approve(instance, by="eve")
    decided = ws.reject(instance, "level1_approval", by="team_lead", comment="too much")
    assert (decided.task, decided.decision, decided.by, decided.runner_alive) == (
        "level1_approval",
        "rejected",
        "team_lead",
        False,
    )
    # The inbox shows the decision until a run takes it on.
    assert [(d["decision"], d["by"]) for d in ws.approvals()[0]["decisions"]] == [
        ("rejected", "team_lead")
    ]
    with pytest.raises(StateError, match="already rejected"):
        ws.approve(instance, by="team_lead")
    assert ws.run(instance).state == "failed"
    with pytest.raises(StateError, match="failed"):
        ws.start(instance)


def test_start_runs_in_a_process_of_its_own(workspace: Path) -> None:
    write_gated_template(workspace)
    ws = api.Workspace(workspace)
    instance = ws.create("gated", requester="ops")
    with pytest.raises(UsageError, match="has not started; use 'workflow_cli start'"):
        ws.resume(instance)
    started = ws.start(instance, requester="ops")
    assert started.exit_code is None and started.pid > 0 and not started.resume
    assert ws.status(instance)["state"] == "running"
    assert ws.runners() == [{"id": instance, "pid": started.pid, "exit_code": None}]
    with pytest.raises(LockHeldError, match="a runner is executing it already"):
        ws.start(instance)
    release(workspace)
    assert ws.wait_runner(started.pid, WAIT_LIMIT) == 0
    assert ws.status(instance)["state"] == "completed"
    assert ws.runners()[0]["exit_code"] == 0
    requests = [e for e in journal(workspace, instance) if e["type"] == "run_requested"]
    assert [(e["by"], e["resume"]) for e in requests] == [("ops", False)]
    assert "completed" in started.log.read_text()
    assert started.log.stat().st_mode & 0o777 == 0o600


def test_events_follow_a_run_and_the_caller_bounds_them(workspace: Path) -> None:
    write_gated_template(workspace)
    ws = api.Workspace(workspace)
    instance = ws.create("gated")
    assert [e["type"] for e in ws.events(instance)] == ["instance_created"]
    ws.start(instance)
    # The caller bounds following: a timeout while the run is held ends it.
    held = list(ws.events(instance, follow=True, interval=0.02, timeout=0.3))
    assert "run_started" in [e["type"] for e in held]
    assert "run_ended" not in [e["type"] for e in held]
    followed = ws.events(instance, follow=True, interval=0.02, timeout=WAIT_LIMIT)
    seen = []
    for event in followed:
        seen.append(event["type"])
        if event["type"] == "task_started":
            release(workspace)
    assert seen[-1] == "run_ended" and seen.count("task_completed") == 2
    assert ws.status(instance)["state"] == "completed"


def test_stop_and_cancel(workspace: Path) -> None:
    write_gated_template(workspace)
    ws = api.Workspace(workspace)
    instance = ws.create("gated")
    started = ws.start(instance)
    wait_until(lambda: ws.status(instance)["tasks"]["hold"]["state"] == "running", "hold to run")
    stopped = ws.stop(instance, by="ops", grace=0, wait=WAIT_LIMIT)
    assert (stopped.state, stopped.requested, stopped.runner_ended) == ("paused", True, True)
    assert ws.wait_runner(started.pid, WAIT_LIMIT) == 130
    cancelled = ws.cancel(instance, by="ops")
    assert cancelled.state == "cancelled"
    with pytest.raises(StateError, match="cancelled"):
        ws.resume(instance)
    kinds = [(e["type"], e.get("by")) for e in journal(workspace, instance)]
    assert ("stop_requested", "ops") in kinds


def test_async_twins(workspace: Path) -> None:
    write_gated_template(workspace)
    ws = api.Workspace(workspace)

    async def scenario() -> tuple[str, list[str], str]:
        gated = await ws.create_async("gated", {"flag": "go.flag"})
        quick = await ws.create_async("sequential_pipeline")
        await ws.start_async(gated)
        types: list[str] = []

        async def watch() -> None:
            async for event in ws.events_async(gated, follow=True, interval=0.02):
                types.append(event["type"])
                if event["type"] == "task_started" and event["task"] == "hold":
                    release(workspace, "go.flag")

        # The event loop goes on while one call follows a run and another runs one.
        outcome, _ = await asyncio.wait_for(
            asyncio.gather(ws.run_async(quick), watch()), WAIT_LIMIT
        )
        view = await ws.status_async(gated)
        listed = await ws.list_async(state="completed")
        assert {row["id"] for row in listed} == {gated, quick}
        return outcome.state, types, view["state"]

    quick_state, types, gated_state = asyncio.run(scenario())
    assert quick_state == "completed" and gated_state == "completed"
    assert types[-1] == "run_ended"


def test_agents_inbox_and_deliver(workspace: Path, cli: Callable[..., Result]) -> None:
    write_review_template(workspace)
    ws = api.Workspace(workspace)
    instance = ws.create("review", {"report": "q4.txt"})
    assert ws.run(instance).state == "waiting"
    [reviewer] = [a for a in ws.agents() if a["name"] == "reviewer"]
    assert [w["instance"] for w in reviewer["waiting"]] == [instance]
    [item] = ws.inbox("reviewer")
    assert item["parameters"] == {"report": "q4.txt", "pages": 12}
    assert item == {
        **cli("inbox", "reviewer", "--json").json()[0],
        "age_seconds": item["age_seconds"],
    }
    with pytest.raises(NotFoundError, match="unknown agent 'ghost'"):
        ws.inbox("ghost")
    with pytest.raises(OutputRejectedError, match="does not match its output_schema"):
        ws.deliver(instance, "review", agent="reviewer", output={"approved": 1})
    with pytest.raises(UsageError, match="one of them"):
        ws.deliver(instance, "review", agent="reviewer")
    with pytest.raises(StateError, match="assigned to agent 'reviewer', not 'echo'"):
        ws.deliver(instance, "review", agent="echo", output={"approved": True})

    async def deliver() -> api.DeliveryResult:
        return await ws.deliver_async(
            instance, "review", agent="reviewer", output={"approved": False}, by="kim"
        )

    result = asyncio.run(deliver())
    assert (result.id, result.attempt, result.by, result.delivered) == (
        instance,
        1,
        "kim",
        "output",
    )
    assert not result.runner and result.state == "waiting"
    with pytest.raises(StateError, match="a second delivery is refused"):
        ws.deliver(instance, "review", agent="reviewer", error="again")
    [event] = [e for e in journal(workspace, instance) if e["type"] == "agent_delivered"]
    assert (event["by"], event["via"], event["output"]) == ("kim", "command", {"approved": False})
    assert ws.run(instance).state == "completed"
    assert ws.status(instance)["tasks"]["after"]["output"] is False
    assert asyncio.run(ws.inbox_async("reviewer")) == []
    assert [a["runs"] for a in asyncio.run(ws.agents_async()) if a["name"] == "reviewer"] == [1]


def test_a_workspace_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(WorkflowCliError, match="workspace folder does not exist"):
        api.Workspace(tmp_path / "missing")


def test_a_gate_with_a_form_is_approved_with_its_inputs(workspace: Path) -> None:
    definition = {
        "id": "form",
        "name": "form",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": {
            "gate": {
                "action": "approval_gate",
                "parameters": {
                    "approvers": ["ana"],
                    "message": "how much?",
                    "inputs": {
                        "type": "object",
                        "properties": {"amount": {"type": "number"}},
                        "required": ["amount"],
                    },
                },
            }
        },
    }
    path = workspace / "form.json"
    path.write_text(json.dumps(definition))
    ws = api.Workspace(workspace)
    instance = ws.create(str(path))
    assert ws.run(instance).state == "waiting"
    with pytest.raises(UsageError, match="do not fit the gate's inputs"):
        ws.approve(instance, by="ana", inputs={"amount": "lots"})
    ws.approve(instance, by="ana", inputs={"amount": 12.5})
    assert ws.run(instance).state == "completed"
    assert ws.status(instance)["tasks"]["gate"]["output"]["inputs"] == {"amount": 12.5}
