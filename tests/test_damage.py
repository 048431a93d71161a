"""Damage is refused, never acted on: a journal changed in the middle stops every command
that writes (and `status`), a hand-edited cache is not believed, a checkpoint that does
not fit its instance is not rolled back to, and a link planted in instances/ is not
followed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, write_definition

from workflow_cli.store.checkpoints import checksum


def gate(*deps: str) -> dict[str, Any]:
    return {
        "action": "approval_gate",
        "parameters": {"approvers": ["ann"]},
        "dependencies": list(deps),
    }


def check(expression: str, *deps: str) -> dict[str, Any]:
    return {
        "action": "condition_check",
        "parameters": {"expression": expression},
        "dependencies": list(deps),
    }


def waiting_instance(workspace: Path, cli: Callable[..., Result]) -> str:
    """An instance that ran a, b and c and waits at a gate, with a checkpoint."""
    tasks = {
        "a": {**check("1"), "milestone": True},
        "b": check("2", "a"),
        "c": check("3", "b"),
        "gate": gate("c"),
        "d": check("4", "gate"),
    }
    created = cli("create", str(write_definition(workspace, tasks)), "--json")
    instance = str(created.json()["id"])
    assert cli("start", instance).exit_code == 3
    assert cli("status", instance).exit_code == 0  # the cache is current
    return instance


def everything(workspace: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(workspace)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(workspace.rglob("*"))
        if "monitoring" not in p.parts  # health records are rewritten by status, by design
    }


WRITERS: dict[str, list[str]] = {
    "approve": ["approve", "{id}", "--as", "ann"],
    "reject": ["reject", "{id}", "--as", "ann"],
    "stop": ["stop", "{id}"],
    "cancel": ["cancel", "{id}"],
    "skip": ["skip", "{id}", "--task", "gate"],
    "retry": ["retry", "{id}", "--task", "c"],
    "checkpoint": ["checkpoint", "{id}"],
    "rollback": ["rollback", "{id}", "--yes"],
    "resume": ["resume", "{id}"],
    "start": ["start", "{id}"],
    "set": ["resume", "{id}", "--set", "d.expression=5"],
    "status": ["status", "{id}"],
    "status --json": ["status", "{id}", "--json"],
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_journal_damaged_in_the_middle_stops_every_command(
    workspace: Path, cli: Callable[..., Result], command: str
) -> None:
    instance = waiting_instance(workspace, cli)
    journal = workspace / "instances" / instance / "events.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    position = sum(len(line) for line in lines[:3]) + len(lines[3]) // 2
    damaged = bytearray(journal.read_bytes())
    damaged[position] ^= 0x01  # one bit, in the middle of the fourth event
    journal.write_bytes(bytes(damaged))
    before = everything(workspace)
    args = [a.replace("{id}", instance) for a in WRITERS[command]]
    result = cli(*args)
    assert result.exit_code == 5, result
    assert "damaged" in result.stderr and f"byte {sum(len(x) for x in lines[:3])}" in result.stderr
    assert everything(workspace) == before


def test_a_hand_edited_cache_is_not_believed(workspace: Path, cli: Callable[..., Result]) -> None:
    instance = waiting_instance(workspace, cli)
    cache = workspace / "instances" / instance / "state.json"
    text = cache.read_text()
    assert '"state":"waiting"' in text.replace(" ", "")
    cache.write_text(text.replace('"waiting"', '"completed"'))  # offset and seq untouched
    status = cli("status", instance, "--json")
    assert status.exit_code == 0
    assert status.json()["state"] == "waiting"
    assert status.json()["tasks"]["gate"]["state"] == "waiting"


def test_a_cache_that_is_a_folder_is_replaced(workspace: Path, cli: Callable[..., Result]) -> None:
    instance = waiting_instance(workspace, cli)
    cache = workspace / "instances" / instance / "state.json"
    cache.unlink()
    (cache / "inside").mkdir(parents=True)
    assert cli("status", instance, "--json").json()["state"] == "waiting"
    assert cli("approve", instance, "--as", "ann").exit_code == 0
    assert cli("resume", instance).exit_code == 0
    assert cache.is_file()


def test_a_forged_checkpoint_that_does_not_fit_is_refused(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    instance = waiting_instance(workspace, cli)
    (path,) = (workspace / "checkpoints" / instance).glob("*-milestone.json")
    document = json.loads(path.read_text())
    del document["state"]["tasks"]["b"]
    document["checksum"] = checksum(document)  # whole, but not this instance's
    path.write_text(json.dumps(document))
    rolled = cli("rollback", instance, "--checkpoint", path.name.split("-")[0], "--yes")
    assert rolled.exit_code == 5, rolled
    assert "does not fit" in rolled.stderr and "tasks missing: b" in rolled.stderr
    assert cli("status", instance, "--json").json()["state"] == "waiting"


def test_a_link_planted_in_instances_is_not_followed(
    workspace: Path, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    instance = waiting_instance(workspace, cli)
    outside = tmp_path / "outside"
    (workspace / "instances" / instance).rename(outside)
    (workspace / "instances" / instance).symlink_to(outside)
    before = {p.name: p.read_bytes() for p in outside.iterdir() if p.is_file()}
    for args in (["status", instance], ["approve", instance, "--as", "ann"], ["stop", instance]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result)
        assert "outside the workspace" in result.stderr
    assert {p.name: p.read_bytes() for p in outside.iterdir() if p.is_file()} == before


def test_a_light_checkpoint_is_the_fold_of_the_journal_it_names(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    """start and auto checkpoints hold no copy of the state, only the digest of the journal
    up to their offset; loading one folds that part, and a checkpoint whose journal is not
    there (copied from another instance) is refused."""
    first = waiting_instance(workspace, cli)
    second = waiting_instance(workspace, cli)
    (light,) = (workspace / "checkpoints" / first).glob("*-start.json")
    document = json.loads(light.read_text())
    assert document["format"] == 2 and document["state"] is None
    assert len(document["journal"]) == 64
    shown = cli("checkpoints", "show", first, document["id"], "--json")
    assert {t["state"] for t in shown.json()["state"]["tasks"].values()} == {"pending"}
    stray = workspace / "checkpoints" / second / "0099-start.json"
    stray.write_bytes(light.read_bytes())
    refused = cli("rollback", second, "--checkpoint", "99", "--yes")
    assert refused.exit_code == 5 and f"taken of {first}" in refused.stderr
