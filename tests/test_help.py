"""Help, --version and shell completion through the real CLI: every command's help has
an Examples block and placeholders rather than Python types; the root help shows whole
summaries; completion offers instance ids, template names, task ids and checkpoint ids."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from workflow_cli import __version__
from workflow_cli.cli.app import app


def click_context(command: Any) -> Any:
    return command.make_context("workflow_cli", ["--help"], resilient_parsing=True)


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    found: list[list[str]] = []

    context = click_context(root)

    def walk(command: Any, path: list[str]) -> None:
        if path:
            found.append(path)
        if hasattr(command, "list_commands"):  # a group: its commands are built when asked
            for name in command.list_commands(context):
                walk(command.get_command(context, name), [*path, name])

    walk(root, [])
    return found


def test_every_command_has_examples_and_placeholders_not_types(cli):
    paths = _command_paths()
    assert ["logs"] in paths and ["prune"] in paths and ["checkpoints", "diff"] in paths
    for path in paths:
        result = cli(*path, "--help")
        assert result.exit_code == 0, path
        text = result.stdout
        assert "\nExamples:\n" in text.replace("  Examples:", "Examples:"), path
        block = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0]
        assert all("workflow_cli " in line for line in block.strip().splitlines()), path
        options = text.split("Options:", 1)[-1]
        assert not re.search(r"<(str|int|float|bool|path)>", text), (path, text)
        assert not re.search(r"--[a-z-]+ (TEXT|FLOAT|INTEGER)\b", options), (path, options)


def test_option_placeholders_read_as_what_to_give(cli):
    assert "--param KEY=VALUE" in cli("run", "--help").stdout
    stop = cli("stop", "--help").stdout
    assert "--grace SECONDS" in stop and "--wait SECONDS" in stop
    assert "{ID}" in stop.splitlines()[0] or " ID" in stop.splitlines()[0]
    assert "--set TASK.NAME=VALUE" in cli("resume", "--help").stdout


def test_root_help_shows_whole_summaries_and_version(cli):
    text = cli("--help").stdout
    assert "..." not in text.split("Commands:", 1)[1]
    assert "List instances, newest first." in text
    version = cli("--version")
    assert version.exit_code == 0 and version.stdout == f"workflow_cli {__version__}\n"


def _complete(workspace: Path, words: str) -> list[str]:
    env = {
        **os.environ,
        "WORKFLOW_HOME": str(workspace),
        "_WORKFLOW_CLI_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    code = "from workflow_cli.cli.app import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_of_ids_templates_tasks_and_checkpoints(cli, workspace):
    instance = cli("run", "sequential_pipeline", "--json").json()["id"]
    other = cli("create", "approval_chain").stdout.strip()
    assert _complete(workspace, "workflow_cli status seq") == [instance]
    assert sorted(_complete(workspace, "workflow_cli monitor ")) == sorted([instance, other])
    assert _complete(workspace, "workflow_cli create approval") == ["approval_chain"]
    tasks = ["extract", "transform", "load"]
    assert _complete(workspace, f"workflow_cli logs {instance} ") == tasks
    assert _complete(workspace, f"workflow_cli retry {instance} --task tr") == ["transform"]
    checkpoints = [c["id"] for c in cli("checkpoints", instance, "--json").json()]
    assert _complete(workspace, f"workflow_cli checkpoints show {instance} ") == checkpoints
    assert _complete(workspace, f"workflow_cli rollback {instance} --checkpoint ") == checkpoints
    assert _complete(workspace, "workflow_cli logs nothing-here ") == []


def test_completion_scripts_are_generated(workspace):
    # Typer's switch for scripts: --show-completion takes the shell instead of detecting it.
    env = {
        **os.environ,
        "WORKFLOW_HOME": str(workspace),
        "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1",
    }
    markers = {"bash": "complete -o default", "zsh": "compdef", "fish": "complete"}
    for shell, marker in markers.items():
        done = subprocess.run(
            [sys.executable, "-m", "workflow_cli", "--show-completion", shell],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert marker in done.stdout and "_WORKFLOW_CLI_COMPLETE" in done.stdout, shell
