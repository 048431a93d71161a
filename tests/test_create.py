"""Creating an instance: what is on disk, and made durable, before the new instance
folder is renamed into place."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import write_definition

from workflow_cli.definition.templates import fill_values, read_template
from workflow_cli.engine.lifecycle import create_from_template
from workflow_cli.store.workspace import Workspace


def now() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def tasks(count: int) -> dict[str, object]:
    found: dict[str, object] = {
        f"t{i}": {"action": "agent_task", "agent_id": "echo", "parameters": {"i": i}}
        for i in range(count)
    }
    return found


@pytest.mark.parametrize("count", [3, 1000])  # 1,000 tasks: a status cache too
def test_create_syncs_its_files_and_folder_before_the_rename(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """The definition and the journal are synced, then the new folder (once), before it
    is renamed into place; then the instances folder. The sealed caches are not synced
    (one lost is rebuilt from the journal)."""
    path = write_definition(workspace, tasks(count))
    template = read_template(path)
    ws = Workspace.at(workspace)
    order: list[tuple[str, str]] = []
    real_fsync, real_fdatasync, real_rename = os.fsync, os.fdatasync, os.rename

    def named(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    def fsync(fd: int) -> None:
        order.append(("sync", named(fd)))
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        order.append(("sync", named(fd)))
        real_fdatasync(fd)

    def rename(source: object, target: object) -> None:
        order.append(("rename", str(source)))
        real_rename(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "rename", rename)
    instance_id = create_from_template(ws, template, fill_values(template, {}), now)
    staging = str(ws.instances_dir / f".new-{instance_id}")
    assert order == [
        ("sync", f"{staging}/definition.json"),
        ("sync", f"{staging}/events.jsonl"),
        ("sync", staging),
        ("rename", staging),
        ("sync", str(ws.instances_dir)),
    ]
    folder = ws.instance_dir(instance_id)
    written = {"definition.json", "events.jsonl", "state.json", "logs"}
    if count >= 1000:
        written.add("status.json")
    assert written <= {entry.name for entry in folder.iterdir()}


def test_definition_file_holds_one_task_per_line_as_json_writes_it() -> None:
    """definition.json: one field per line and one task per line, each as
    ``json.dumps(..., ensure_ascii=False)`` writes it (text beyond ASCII kept, numbers
    and nesting exact), and it reads back as the definition."""
    import json

    from workflow_cli.store.instances import definition_text

    definition = {
        "id": "wf",
        "name": 'caf\u00e9 \u2028 "quoted" \\ back',
        "params": {"ratio": 1.5, "big": 10**30, "none": None, "yes": True, "tiny": 1e-300},
        "tasks": {
            "a": {"action": "agent_task", "agent_id": "echo", "parameters": {"x": [1, {"y": []}]}},
            "b/\u00e9": {"action": "agent_task", "agent_id": "echo", "dependencies": ["a"]},
        },
        "hooks": [],
    }
    text = definition_text(definition)
    assert json.loads(text) == definition
    lines = [line.rstrip(",") for line in text.split("\n")]
    for key, value in definition.items():
        if key != "tasks":
            dumped = json.dumps(value, ensure_ascii=False)
            assert f"  {json.dumps(key, ensure_ascii=False)}: {dumped}" in lines
    for task_id, task in definition["tasks"].items():  # type: ignore[attr-defined]
        line = (
            f"    {json.dumps(task_id, ensure_ascii=False)}: {json.dumps(task, ensure_ascii=False)}"
        )
        assert line in lines


@pytest.mark.parametrize(
    "defaults",
    [{}, {"retry_count": 2, "timeout_seconds": 5, "retry_on": ["timeout"], "priority": 3}],
)
def test_a_task_of_plain_keys_takes_every_setting_from_the_defaults(
    defaults: dict[str, object],
) -> None:
    """A task that sets nothing of its own (the usual one, read the quick way) gets the
    same model as one that sets the defaults' values itself (read the full way)."""
    from workflow_cli.definition.model import TASK_DEFAULTS, RetryPolicy, parse_workflow

    plain = {"action": "agent_task", "agent_id": "echo", "dependencies": ["a", "a"]}
    settings = {**TASK_DEFAULTS, **defaults}
    spelled = {**plain, **{k: v for k, v in settings.items() if v is not None}}
    definition = {
        "defaults": defaults,
        "tasks": {"a": {"action": "agent_task"}, "plain": plain, "spelled": spelled},
    }
    workflow = parse_workflow(definition)
    quick, full = workflow.tasks["plain"], workflow.tasks["spelled"]
    assert quick == replace(full, id="plain", order=1)
    assert quick.dependencies == ("a",)
    assert quick.parameters == {} and quick.conditions == () and quick.compensate is None
    retry_on = settings["retry_on"]
    assert quick.retry == RetryPolicy(
        settings["retry_count"],
        settings["retry_delay"],
        settings["retry_backoff"],
        settings["max_retry_delay"],
        tuple(retry_on) if isinstance(retry_on, list) else None,
    )
    assert (quick.timeout, quick.priority) == (settings["timeout_seconds"], settings["priority"])
    assert workflow.tasks["a"].dependencies == ()


def test_instances_of_one_template_object_do_not_share_what_creation_changes(
    workspace: Path,
) -> None:
    """The template's body is shared with the definitions made from it, but for the tasks
    whose agent a parameter chooses: two instances of one `Template` choose their own
    agents, and the template still holds the expression."""
    import json

    path = workspace / "chooser.json"
    body = {
        "name": "chooser",
        "version": "2.0.0",
        "tasks": {
            "pick": {
                "action": "agent_task",
                "agent_id": "{{ params.worker }}",
                "compensate": {"action": "agent_task", "agent_id": "{{ params.undo }}"},
            },
            "same": {"action": "agent_task", "agent_id": "echo", "dependencies": ["pick"]},
        },
    }
    parameters = {
        "worker": {"type": "string", "default": "echo"},
        "undo": {"type": "string", "default": "echo"},
    }
    path.write_text(json.dumps({"name": "chooser", "parameters": parameters, "workflow": body}))
    template = read_template(path)
    ws = Workspace.at(workspace)
    first = create_from_template(ws, template, fill_values(template, {}), now)
    second = create_from_template(
        ws, template, fill_values(template, {"worker": "mail_a", "undo": "mail_b"}), now
    )

    def written(instance_id: str) -> dict[str, object]:
        text = (ws.instance_dir(instance_id) / "definition.json").read_text()
        return json.loads(text)["tasks"]  # type: ignore[no-any-return]

    assert written(first)["pick"]["agent_id"] == "echo"  # type: ignore[index]
    assert written(first)["pick"]["compensate"]["agent_id"] == "echo"  # type: ignore[index]
    assert written(second)["pick"]["agent_id"] == "mail_a"  # type: ignore[index]
    assert written(second)["pick"]["compensate"]["agent_id"] == "mail_b"  # type: ignore[index]
    assert template.workflow["tasks"] == body["tasks"]
    assert written(second)["same"] == body["tasks"]["same"]  # type: ignore[index]
