"""User text shown through Rich is text, not markup: names, messages, errors, reasons,
parameters and labels holding ``[/]``, ``[bold]`` or ``[red]…`` are printed as they are
by every command that shows them, never parsed (a stray ``[/]`` used to crash)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import write_definition

MARKUP = "[/]a[bold]b[/bold][red]c"
FAILING = "'[/]' + 1"  # its error message quotes the expression, markup and all


def tasks() -> dict[str, Any]:
    return {
        "ok": {
            "action": "agent_task",
            "agent_id": "echo",
            "name": MARKUP,
            "parameters": {"text": MARKUP},
        },
        "bad": {
            "action": "condition_check",
            "parameters": {"expression": FAILING},
            "critical": False,
        },
        "gate": {
            "action": "approval_gate",
            "parameters": {"approvers": [MARKUP], "message": MARKUP},
            "dependencies": ["ok"],
        },
    }


def run_instance(cli, workspace: Path) -> str:
    path = write_definition(
        workspace, tasks(), name="wf.json", description=MARKUP, params={"label": MARKUP}
    )
    document = json.loads(path.read_text())
    document["name"] = MARKUP
    path.write_text(json.dumps(document))
    result = cli("run", str(path), "--json")
    assert result.exit_code == 3, result  # waits at the gate
    instance: str = result.json()["id"]
    return instance


def test_every_command_shows_markup_in_user_text_as_text(cli, workspace: Path) -> None:
    instance = run_instance(cli, workspace)
    label = cli("checkpoint", instance, "--label", MARKUP)
    assert label.exit_code == 0, label
    shown = {
        "status": cli("status", instance),
        "list": cli("list"),
        "debug": cli("debug", instance, "bad"),
        "debug gate": cli("debug", instance, "gate"),
        "health": cli("health", instance, "--explain"),
        "workspace health": cli("health"),
        "alerts": cli("alerts"),
        "graph": cli("graph", instance),
        "monitor": cli("monitor", instance, "--duration", "0"),
        "events": cli("events", instance),
        "checkpoints": cli("checkpoints", "list", instance),
    }
    for command, result in shown.items():
        assert result.exit_code in (0, 1, 3), (command, result)
        assert "internal error" not in result.stderr, (command, result.stderr)
        assert "MarkupError" not in result.stderr + result.stdout, command
    error = "can only concatenate str"
    assert "[/]" in shown["status"].stdout and error in shown["status"].stdout
    assert FAILING in shown["debug"].stdout
    assert MARKUP in shown["debug gate"].stdout
    assert MARKUP in shown["graph"].stdout
    approved = cli("approve", instance, "--as", MARKUP, "--comment", MARKUP)
    assert approved.exit_code == 0, approved
    assert MARKUP in approved.stdout
    resumed = cli("resume", instance)
    assert resumed.exit_code == 0, resumed
    assert "internal error" not in resumed.stderr


def test_templates_with_markup_in_their_text(cli, workspace: Path) -> None:
    (workspace / "templates").mkdir()
    template = {
        "name": "marked",
        "description": MARKUP,
        "parameters": {
            "p": {"type": "string", "default": MARKUP, "description": MARKUP, "enum": [MARKUP]}
        },
        "workflow": {
            "id": "marked",
            "name": MARKUP,
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {"t": {**tasks()["ok"], "name": MARKUP}},
        },
    }
    (workspace / "templates" / "marked.json").write_text(json.dumps(template))
    listed = cli("templates")
    assert listed.exit_code == 0, listed
    assert "[/]a[bold]b" in listed.stdout.replace("\n", "")
    shown = cli("templates", "show", "marked")
    assert shown.exit_code == 0, shown
    assert shown.stdout.count(MARKUP) >= 3


def test_a_failing_run_prints_its_markup_as_text(cli_process, workspace: Path) -> None:
    """The live reporter of ``run`` (plain lines when not a terminal) and the exit."""
    path = write_definition(
        workspace, {"bad": {"action": "condition_check", "parameters": {"expression": FAILING}}}
    )
    result = cli_process("run", str(path))
    assert result.returncode == 1, result.stderr
    assert FAILING in result.stdout
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
