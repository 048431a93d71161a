"""Workspace and instance files that are damaged, of the wrong kind or not text get exit 2
(or the exit code of their kind) and a message naming the file, never an internal error,
a wait forever or a value silently dropped; nothing is written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import start_runner, write_definition
from gated import WAIT_LIMIT, release, write_gated_template

AGENT_TASK = {"a": {"action": "agent_task", "agent_id": "echoer", "parameters": {}}}


def test_an_agent_declared_twice_is_refused(cli, workspace: Path) -> None:
    (workspace / "agents.yaml").write_text(
        "agents:\n  echoer:\n    command: [echo, one]\n  echoer:\n    command: [echo, two]\n"
    )
    result = cli("run", str(write_definition(workspace, AGENT_TASK)))
    assert result.exit_code == 2, result
    assert "/agents/echoer: duplicate key 'echoer'" in result.stderr
    assert not any((workspace / "instances").glob("*"))


def test_an_agents_file_not_in_utf8_is_refused(cli, workspace: Path) -> None:
    (workspace / "agents.yaml").write_bytes(b"agents:\n  \xe9choer:\n    command: [echo]\n")
    for args in (["agents"], ["run", str(write_definition(workspace, AGENT_TASK))]):
        result = cli(*args)
        assert result.exit_code == 2, result
        assert "agents.yaml" in result.stderr and "cannot be read" in result.stderr
        assert "internal error" not in result.stderr
    assert not any((workspace / "instances").glob("*"))


def test_an_agents_file_that_is_a_fifo_is_not_waited_on(cli_process, workspace: Path) -> None:
    os.mkfifo(workspace / "agents.yaml")
    result = cli_process("agents", timeout=30)
    assert result.returncode == 2, result.stderr
    assert "agents.yaml" in result.stderr and "is a named pipe, not a file" in result.stderr


def test_debug_of_an_emptied_journal_is_refused_like_status(cli, workspace: Path) -> None:
    tasks = {"a": {"action": "condition_check", "parameters": {"expression": "1"}}}
    made = cli("run", str(write_definition(workspace, tasks)), "--json").json()["id"]
    (workspace / "instances" / made / "events.jsonl").write_bytes(b"")
    for command in ("status", "debug"):
        result = cli(command, made)
        assert result.exit_code == 2, result
        assert "events.jsonl holds no instance_created event" in result.stderr


WAITING = {
    "review": {"action": "agent_task", "agent_id": "reviewer", "parameters": {}},
    "gate": {
        "action": "approval_gate",
        "parameters": {
            "message": "ok?",
            "approvers": ["bob"],
            "inputs": {"type": "object", "properties": {"amount": {"type": "number"}}},
        },
    },
}


@pytest.mark.parametrize(
    "args",
    [
        ["deliver", "{id}", "review", "--as", "reviewer", "--output", '{"score": NaN}'],
        ["deliver", "{id}", "review", "--as", "reviewer", "--output", "Infinity"],
        ["signal", "{id}", "ready", "--data", '{"level": -Infinity}'],
        ["approve", "{id}", "gate", "--as", "bob", "--inputs", '{"amount": NaN}'],
        ["approve", "{id}", "gate", "--as", "bob", "--set", "amount=NaN"],
    ],
)
def test_nan_and_infinity_are_not_json_and_never_reach_the_journal(
    cli, workspace: Path, args: list[str]
) -> None:
    assert "internal error" not in _refused_on_a_waiting_run(cli, workspace, args).stderr


def _refused_on_a_waiting_run(cli, workspace: Path, args: list[str]) -> Any:
    """`args` ({id}: a run waiting at its gate) refused with exit 2, the journal as it was."""
    result = cli("run", str(write_definition(workspace, WAITING)), "--json")
    assert result.exit_code == 3, result
    made = result.json()["id"]
    journal = workspace / "instances" / made / "events.jsonl"
    before = journal.read_bytes()
    refused = cli(*(arg.replace("{id}", made) for arg in args))
    assert refused.exit_code == 2, refused
    assert journal.read_bytes() == before
    return refused


@pytest.mark.parametrize("grace", ["nan", "inf", "1e400"])
def test_a_grace_that_is_no_number_of_seconds_is_refused(cli, workspace: Path, grace: str) -> None:
    write_gated_template(workspace)
    made, runner = start_runner(workspace, Path("gated"))
    journal = workspace / "instances" / made / "events.jsonl"
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while b'"task_started"' not in journal.read_bytes():  # a live runner, to be asked
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.02)
        refused = cli("stop", made, "--grace", grace, "--wait", "0")
        assert refused.exit_code == 2, refused
        assert "the grace must be a number of seconds" in refused.stderr
        assert b"stop_requested" not in journal.read_bytes()
        release(workspace)
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert runner.returncode == 0


@pytest.mark.parametrize("option", ["--data", "--output"])
def test_a_json_option_from_a_fifo_is_not_waited_on(cli, cli_process, workspace, option) -> None:
    result = cli("run", str(write_definition(workspace, WAITING)), "--json")
    assert result.exit_code == 3, result
    made = result.json()["id"]
    os.mkfifo(workspace / "data.json")
    if option == "--data":
        args = ["signal", made, "ready", "--data", "@data.json"]
    else:
        args = ["deliver", made, "review", "--as", "reviewer", "--output", "@data.json"]
    refused = cli_process(*args, timeout=30)
    assert refused.returncode == 2, refused.stderr
    said = f"{option}: cannot read data.json: it is a named pipe, not a file"
    assert said in refused.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["deliver", "{id}", "review", "--as", "reviewer", "--output", '{"ok": false, "ok": true}'],
        ["signal", "{id}", "ready", "--data", '{"level": 1, "level": 2}'],
        ["approve", "{id}", "gate", "--as", "bob", "--inputs", '{"amount": 1, "amount": 2}'],
    ],
)
def test_a_json_value_with_a_key_written_twice_is_refused(cli, workspace: Path, args) -> None:
    assert "duplicate key" in _refused_on_a_waiting_run(cli, workspace, args).stderr


def _one_task_template(workspace: Path, parameters: dict[str, Any]) -> None:
    """Template ``t``: one condition_check task, with `parameters` declared."""
    template = {
        "name": "t",
        "parameters": parameters,
        "workflow": {
            "id": "t",
            "name": "t",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {"a": {"action": "condition_check", "parameters": {"expression": "1"}}},
        },
    }
    (workspace / "templates").mkdir()
    (workspace / "templates" / "t.json").write_text(json.dumps(template))


def test_a_param_with_a_key_written_twice_is_refused(cli, workspace: Path) -> None:
    _one_task_template(workspace, {"o": {"type": "object", "default": {}}})
    refused = cli("create", "t", "-p", 'o={"mode": "dry", "mode": "live"}')
    assert refused.exit_code == 2, refused
    assert "parameter 'o'" in refused.stderr and "duplicate key 'mode'" in refused.stderr
    assert not any((workspace / "instances").glob("*"))


def test_an_argument_that_is_not_utf8_is_refused(cli, cli_process, workspace: Path) -> None:
    result = cli("run", str(write_definition(workspace, WAITING)), "--json")
    made = result.json()["id"]
    journal = workspace / "instances" / made / "events.jsonl"
    before = journal.read_bytes()
    text = b"caf\xe9".decode("utf-8", "surrogateescape")  # Latin-1 bytes, as Python gets them
    for args in (
        ["checkpoint", made, "--label", text],
        ["signal", made, text],
        ["cancel", made, "--as", text],
        ["create", str(workspace / "wf.json"), "--as", text],
    ):
        refused = cli(*args)
        assert refused.exit_code == 2, refused
        assert "argument 'caf\\xe9' is not UTF-8 text" in refused.stderr
    assert journal.read_bytes() == before
    assert [p.name for p in (workspace / "instances").iterdir()] == [made]
    assert len(list((workspace / "checkpoints" / made).iterdir())) == 1  # the start's


def test_a_journal_replaced_by_a_folder_is_named(cli, workspace: Path) -> None:
    tasks = {"a": {"action": "condition_check", "parameters": {"expression": "1"}}}
    made = cli("run", str(write_definition(workspace, tasks)), "--json").json()["id"]
    journal = workspace / "instances" / made / "events.jsonl"
    journal.unlink()
    (workspace / "instances" / made / "state.json").unlink()
    journal.mkdir()
    for args in (["status", made], ["events", made], ["list"], ["cancel", made]):
        result = cli(*args)
        assert result.exit_code == 2, result
        assert f"cannot read {journal}" in result.stderr


# -- the engine's own files, replaced by a named pipe or a folder ----------------------------
# Each is refused with exit 2 and a message naming it; a named pipe is never waited on
# (the commands run as processes under a time limit, so a wait forever fails the test).
# The caches (state.json, status.json, monitoring/health.json) are no cache instead.

REFUSED = [  # (file, commands that read it), ID: the instance
    ("instances/ID/definition.json", [["debug", "ID"], ["resume", "ID"]]),
    ("instances/ID/run.lock", [["status", "ID"], ["resume", "ID"]]),
    ("instances/ID/events.lock", [["cancel", "ID"], ["signal", "ID", "ready"]]),
    ("instances/ID/events.jsonl", [["status", "ID"], ["events", "ID"]]),
    ("instances/ID/logs/review.log", [["logs", "ID", "review"]]),
    ("instances/ID/resources.jsonl", [["resume", "ID"]]),
    ("monitoring/instances/ID.json", [["health", "ID"]]),
    ("monitoring/alerts.jsonl", [["alerts"]]),
    ("schedules/book.json", [["schedules"], ["tick"]]),
    ("schedules/tick.lock", [["tick"]]),
    ("agents/reviewer/inbox/ID.review.json", [["inbox", "reviewer"], ["agents"]]),
    ("server/tokens.json", [["tokens", "list"]]),
    (
        "server/tokens.lock",
        [["tokens", "add", "ops", "--role", "viewer"], ["tokens", "revoke", "ci"]],
    ),
]
KINDS = {"fifo": "a named pipe", "folder": "a folder"}


def _engine_workspace(cli, workspace: Path) -> str:
    """A workspace with an instance waiting on a mailbox agent and a gate, its health
    record, a schedule's book and an API token: every kind of file the engine keeps."""
    (workspace / "workflow_cli.yaml").write_text(
        "schedules:\n  nightly:\n    template: wf.json\n    cron: '0 2 * * *'\n"
    )
    result = cli("run", str(write_definition(workspace, WAITING)), "--json")
    assert result.exit_code == 3, result
    made = str(result.json()["id"])
    for args in (["health", made], ["tick"], ["tokens", "add", "ci", "--role", "viewer"]):
        assert cli(*args).exit_code == 0, args
    return made


def _put(path: Path, kind: str) -> None:
    """Put a named pipe or a folder in the place of `path`."""
    if path.is_dir():
        path.rmdir()
    else:
        path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


def _files(workspace: Path) -> dict[str, bytes | str]:
    """Every entry of the workspace: a file's bytes, or what else it is."""
    found: dict[str, bytes | str] = {}
    for path in sorted(workspace.rglob("*")):
        key = str(path.relative_to(workspace))
        if path.is_fifo():
            found[key] = "fifo"
        elif path.is_dir():
            found[key] = "folder"
        else:
            found[key] = path.read_bytes()
    return found


def _run(cli, cli_process, kind: str, args: list[str]) -> tuple[int, str]:
    """`args` run by the CLI: as a process under a time limit when a pipe could hold it."""
    if kind == "fifo":
        done = cli_process(*args, timeout=30)
        return done.returncode, done.stderr
    result = cli(*args)
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("name", "commands", "kind"),
    [
        pytest.param(name, commands, kind, id=f"{name}-{kind}")
        for name, commands in REFUSED
        for kind in sorted(KINDS)
        # a journal that is a folder: test_a_journal_replaced_by_a_folder_is_named
        if (name, kind) != ("instances/ID/events.jsonl", "folder")
    ],
)
def test_an_engine_file_that_is_not_a_file_is_refused_by_name(
    cli, cli_process, workspace: Path, kind: str, name: str, commands: list[list[str]]
) -> None:
    made = _engine_workspace(cli, workspace)
    path = workspace / name.replace("ID", made)
    _put(path, kind)
    before = _files(workspace)
    for args in commands:
        code, stderr = _run(cli, cli_process, kind, [arg.replace("ID", made) for arg in args])
        assert code == 2, (args, stderr)
        verb = "lock" if name.endswith(".lock") else "read"
        assert f"cannot {verb} {path}: it is {KINDS[kind]}, not a file" in stderr, (args, stderr)
        assert "Traceback" not in stderr and "internal error" not in stderr
        assert _files(workspace) == before, args


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_checkpoint_that_is_not_a_file_is_shown_damaged_and_never_loaded(
    cli, cli_process, workspace: Path, kind: str
) -> None:
    made = _engine_workspace(cli, workspace)
    path = workspace / "checkpoints" / made / "0001-start.json"
    _put(path, kind)
    before = _files(workspace)
    said = f"cannot read {path}: it is {KINDS[kind]}, not a file"
    code, _ = _run(cli, cli_process, kind, ["checkpoints", "list", made])
    assert code == 0
    listed = cli("checkpoints", "list", made, "--json") if kind == "folder" else None
    if listed is not None:
        assert said in listed.stdout, listed
    for args in (
        ["checkpoints", "show", made, "0001-start"],
        ["rollback", made, "--checkpoint", "0001-start", "--yes"],
    ):
        code, stderr = _run(cli, cli_process, kind, args)
        assert code == 5, (args, stderr)
        assert said in stderr and "Traceback" not in stderr, (args, stderr)
    assert _files(workspace) == before


CACHES = ["instances/ID/state.json", "instances/ID/status.json", "monitoring/health.json"]


@pytest.mark.parametrize("name", CACHES)
def test_a_cache_that_is_a_named_pipe_is_no_cache(
    cli, cli_process, workspace: Path, name: str
) -> None:
    """As a folder in a cache's place is (store.instances.save_state_cache)."""
    made = _engine_workspace(cli, workspace)
    shown = cli("status", made, "--json").json()
    path = workspace / name.replace("ID", made)
    _put(path, "fifo")
    for args in (["status", made], ["list"]):
        done = cli_process(*args, timeout=30)
        assert done.returncode == 0, (args, done.stderr)
        assert made in done.stdout
    assert cli("status", made, "--json").json() == shown
    if name.endswith("state.json"):  # the next save of the cache replaces the pipe
        done = cli_process("resume", made, timeout=30)
        assert done.returncode == 3, done.stderr
        assert path.is_file()


def test_a_folder_in_the_place_of_a_file_written_is_named(cli, workspace: Path) -> None:
    _engine_workspace(cli, workspace)
    path = workspace / "monitoring" / "health.json"
    _put(path, "folder")
    result = cli("health")
    assert result.exit_code == 2, result
    assert f"cannot write {path}: it is a folder, not a file" in result.stderr


def test_a_secret_key_that_is_a_named_pipe_is_not_waited_on(cli_process, workspace: Path) -> None:
    _one_task_template(workspace, {"password": {"type": "string", "secret": True}})
    key = workspace / ".workflow_cli" / "secret.key"
    _put(key, "fifo")
    refused = cli_process("create", "t", "-p", "password=hunter2", timeout=30)
    assert refused.returncode == 2, refused.stderr
    assert f"cannot read {key}: it is a named pipe, not a file" in refused.stderr
    assert not any((workspace / "instances").glob("*"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_outbox_file_that_is_not_a_file_is_rejected(
    cli, cli_process, workspace: Path, kind: str
) -> None:
    made = _engine_workspace(cli, workspace)
    outbox = workspace / "agents" / "reviewer" / "outbox"
    _put(outbox / f"{made}.review.json", kind)
    journal = workspace / "instances" / made / "events.jsonl"
    before = journal.read_bytes()
    code, stderr = _run(cli, cli_process, kind, ["resume", made])
    assert code == 3, stderr  # still waiting: nothing was delivered
    assert b"agent_delivered" not in journal.read_bytes()[len(before) :]
    assert not (outbox / f"{made}.review.json").exists()
    reason = (outbox / "rejected" / f"{made}.review.json.reason.txt").read_text()
    assert f"cannot read {outbox / made}.review.json: it is {KINDS[kind]}, not a file" in reason


def test_a_task_log_that_is_a_named_pipe_fails_the_task_not_the_runner(
    cli, cli_process, workspace: Path
) -> None:
    """A run does not wait on it: the attempt ends failed, saying why, and the run ends."""
    (workspace / "agents.yaml").write_text("agents:\n  echoer:\n    command: [echo, hi]\n")
    made = cli("create", str(write_definition(workspace, AGENT_TASK))).stdout.strip()
    log = workspace / "instances" / made / "logs" / "a.log"
    _put(log, "fifo")
    done = cli_process("start", made, timeout=30)
    assert done.returncode == 1, done.stderr
    assert f"cannot write {log}: it is a named pipe, not a file" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert cli("status", made, "--json").json()["state"] == "failed"


def test_a_folder_in_the_place_of_a_large_instances_brief_is_replaced(cli, workspace: Path) -> None:
    """status.json (an instance of MIN_TASKS tasks or more) is a cache like state.json:
    a folder in its place goes when the cache is written again."""
    from workflow_cli.store.status_cache import MIN_TASKS

    tasks = {f"t{i}": {"action": "agent_task", "agent_id": "echo"} for i in range(MIN_TASKS)}
    created = cli("create", str(write_definition(workspace, tasks)), "--json")
    assert created.exit_code == 0, created
    made = created.json()["id"]
    brief = workspace / "instances" / made / "status.json"
    assert brief.is_file()
    brief.unlink()
    brief.mkdir()
    (brief / "left.txt").write_text("x")
    result = cli("start", made, "--json")
    assert result.exit_code == 0, result
    assert result.json()["state"] == "completed"
    assert brief.is_file()
