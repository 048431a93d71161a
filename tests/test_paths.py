"""Paths tasks name stay inside the workspace even while the disk changes underfoot:
a link swapped in between a check and a use is never followed out (the walk holds each
folder open), and a child workflow's template file must be inside the workspace."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_call, write_definition

from workflow_cli.engine.actions.base import ActionFailed
from workflow_cli.engine.actions.file_operation import ACTION, MAX_READ_BYTES
from workflow_cli.engine.paths import locate, resolve_in_workspace
from workflow_cli.store.workspace import Workspace

Run = Callable[..., Any]


@pytest.fixture
def run(workspace: Path) -> Iterator[Run]:
    log_path = workspace / "task.log"
    with open(log_path, "a", encoding="utf-8") as log:

        def run(**parameters: Any) -> Any:
            call = make_call(workspace, log, log_path, task_id="files", parameters=parameters)
            return ACTION.run(call)

        yield run


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A folder beside the workspace with one file that must never be read or changed."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("OUTSIDE", encoding="utf-8")
    (folder / "only-outside.txt").write_text("OUTSIDE", encoding="utf-8")
    yield folder
    shutil.rmtree(folder)


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (p.read_text(encoding="utf-8"), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_link_swapped_in_while_tasks_run_never_leads_outside(
    run: Run, workspace: Path, outside: Path
) -> None:
    """A thread flips ``flip`` between a folder inside and a link to a folder outside
    while file operations run on paths through it; none reads or writes outside."""
    flip, parked, link = workspace / "flip", workspace / "flip.parked", workspace / "flip.link"
    flip.mkdir()
    (flip / "secret.txt").write_text("inside", encoding="utf-8")
    (workspace / "mine.txt").write_text("mine", encoding="utf-8")
    before = snapshot(outside)
    stop = threading.Event()
    flips = [0]

    errors: list[BaseException] = []
    aside = itertools.count()

    def clear_flip() -> None:
        """Whatever is at flip now (a folder a write made meanwhile) moves aside."""
        with contextlib.suppress(FileNotFoundError):
            os.rename(flip, workspace / f"made-meanwhile.{next(aside)}")

    def into_place(source: Path) -> None:
        """Rename `source` to flip, moving aside what writes keep making there."""
        for _ in range(100):
            try:
                os.rename(source, flip)
                return
            except OSError:
                clear_flip()
        os.rename(source, flip)

    def flipper() -> None:
        deadline = time.monotonic() + 30
        try:
            while not stop.is_set() and flips[0] < 200_000 and time.monotonic() < deadline:
                os.rename(flip, parked)  # flip: gone, then a link to outside
                os.symlink(outside, link)
                into_place(link)
                clear_flip()  # flip: gone, then the folder inside again
                into_place(parked)
                flips[0] += 1
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    reads, refusals, started = 0, 0, time.monotonic()
    operations: list[dict[str, Any]] = [
        {"operation": "read", "path": "flip/secret.txt"},
        {"operation": "write", "path": "flip/written.txt", "content": "w"},
        {"operation": "copy", "path": "flip/secret.txt", "destination": "copied.txt"},
        {"operation": "copy", "path": "mine.txt", "destination": "flip/copy-in.txt"},
        {"operation": "move", "path": "flip/written.txt", "destination": "flip/moved.txt"},
        {"operation": "delete", "path": "flip/moved.txt"},
        {"operation": "list", "path": "flip"},
    ]
    try:
        for _ in range(400):
            if time.monotonic() - started > 20 or (reads > 50 and refusals > 50):
                break
            for parameters in operations:
                try:
                    output = run(**parameters)
                except ActionFailed as failure:
                    refusals += failure.kind == "path"
                    continue
                if parameters["operation"] == "read":
                    reads += 1
                    assert output["content"] == "inside"
                if parameters["operation"] == "list":
                    assert "only-outside.txt" not in output["entries"], output
            copied = workspace / "copied.txt"
            if copied.exists():
                assert copied.read_text(encoding="utf-8") == "inside"
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors == []
    assert flips[0] > 10, "the flipping thread hardly ran"
    assert reads > 0 and refusals > 0, (reads, refusals)  # both sides of the race were met
    assert snapshot(outside) == before


def test_links_inside_the_workspace_are_followed(run: Run, workspace: Path) -> None:
    (workspace / "data").mkdir()
    (workspace / "data" / "in.txt").write_text("hello", encoding="utf-8")
    os.symlink("data", workspace / "alias")
    os.symlink(str(workspace / "data" / "in.txt"), workspace / "absolute-link")
    assert run(operation="read", path="alias/in.txt")["content"] == "hello"
    assert run(operation="read", path="absolute-link")["content"] == "hello"
    run(operation="write", path="alias/out.txt", content="x")
    assert (workspace / "data" / "out.txt").read_text(encoding="utf-8") == "x"
    assert run(operation="list", path="alias")["entries"] == ["in.txt", "out.txt"]
    os.symlink("../data", workspace / "data" / "loop")
    assert run(operation="list", path="data", pattern="loop/*")["entries"] == [
        "loop/in.txt",
        "loop/loop",
        "loop/out.txt",
    ]


def test_links_into_the_engine_folders_are_refused(run: Run, workspace: Path) -> None:
    (workspace / "instances" / "x").mkdir(parents=True)
    (workspace / "instances" / "x" / "events.jsonl").write_text("{}\n", encoding="utf-8")
    os.symlink("instances/x", workspace / "innocent")
    for parameters in (
        {"operation": "read", "path": "innocent/events.jsonl"},
        {"operation": "write", "path": "innocent/events.jsonl", "content": "forged"},
        {"operation": "delete", "path": "innocent/events.jsonl"},
        {"operation": "list", "path": "innocent"},
    ):
        with pytest.raises(ActionFailed, match="engine's own instances/") as caught:
            run(**parameters)
        assert caught.value.kind == "path"
    assert (workspace / "instances" / "x" / "events.jsonl").read_text() == "{}\n"


def test_a_link_loop_is_refused(run: Run, workspace: Path) -> None:
    os.symlink("b", workspace / "a")
    os.symlink("a", workspace / "b")
    with pytest.raises(ActionFailed, match="more than 40 links") as caught:
        run(operation="read", path="a/x.txt")
    assert caught.value.kind == "path"


def test_reading_a_fifo_or_a_large_file_fails_at_once(run: Run, workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    with pytest.raises(ActionFailed, match="is not a file"):
        run(operation="read", path="pipe")
    with open(workspace / "big.txt", "wb") as handle:
        handle.truncate(MAX_READ_BYTES + 1)
    with pytest.raises(ActionFailed, match="larger than 1,000,000 bytes") as caught:
        run(operation="read", path="big.txt")
    assert (caught.value.kind, caught.value.retryable) == ("too_large", False)


def test_resolve_in_workspace_and_locate_agree(workspace: Path) -> None:
    ws = Workspace(workspace)
    (workspace / "real").mkdir()
    os.symlink("real", workspace / "alias")
    assert resolve_in_workspace(ws, "alias/x/y.txt") == workspace.resolve() / "real/x/y.txt"
    found = locate(ws, "alias/x/y.txt")
    try:
        assert (found.folder, found.missing, found.name, found.exists) == (
            ("real",),
            ("x",),
            "y.txt",
            False,
        )
    finally:
        found.close()


# -- workflow_trigger -----------------------------------------------------------------


def child_template(folder: Path, name: str = "child.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        json.dumps(
            {
                "name": "child",
                "description": "a child",
                "parameters": {},
                "workflow": {
                    "id": "child",
                    "name": "child",
                    "version": "1",
                    "schema_version": "2.0.0",
                    "tasks": {
                        "hi": {"action": "condition_check", "parameters": {"expression": "7"}}
                    },
                },
            }
        ),
        encoding="utf-8",
    )
    return path


def trigger(template: str) -> dict[str, Any]:
    return {
        "action": "workflow_trigger",
        "parameters": {"template": template},
        "critical": False,
    }


def test_a_child_template_outside_the_workspace_is_refused(
    cli, workspace: Path, outside: Path
) -> None:
    """Absolute and ``..`` paths fail the task with a clear error (even when computed by
    an expression, where validation cannot see them), and so does a link leading out;
    a file inside the workspace and a template by name run."""
    escaped = child_template(outside)
    child_template(workspace / "flows")
    child_template(workspace / "templates")
    os.symlink(outside, workspace / "escape")
    tasks = {
        "absolute": trigger("{{ '" + str(escaped) + "' }}"),
        "dotdot": trigger("{{ '../outside/child.json' }}"),
        "link": trigger("escape/child.json"),
        "engine": trigger("{{ 'instances/x.json' }}"),
        "inside": trigger("flows/child.json"),
        "named": trigger("child"),
    }
    result = cli("run", str(write_definition(workspace, tasks)), "--json")
    assert result.exit_code == 0, result
    status = cli("status", result.json()["id"], "--json").json()["tasks"]
    messages = {task: (status[task]["error"] or {}).get("message", "") for task in tasks}
    assert status["absolute"]["state"] == "failed"
    assert "must be relative to the workspace, not absolute" in messages["absolute"]
    assert "must not use '..'" in messages["dotdot"]
    assert "leads outside the workspace" in messages["link"]
    assert "engine's own instances/" in messages["engine"]
    for task in ("absolute", "dotdot", "link", "engine"):
        assert status[task]["error"]["kind"] == "path"
    assert status["inside"]["state"] == "completed"
    assert status["inside"]["output"]["outputs"] == {"hi": 7}
    assert status["named"]["state"] == "completed"
    assert status["named"]["output"]["outputs"] == {"hi": 7}
    names = sorted(path.name for path in outside.iterdir())
    assert names == ["child.json", "only-outside.txt", "secret.txt"]  # nothing new there


def test_validate_refuses_a_literal_template_path_outside(cli, workspace: Path) -> None:
    tasks = {"a": trigger("/etc/child.json"), "b": trigger("../child.json")}
    result = cli("validate", str(write_definition(workspace, tasks)))
    assert result.exit_code == 2
    assert "/tasks/a/parameters/template: a template file must be relative" in result.stderr
    assert "/tasks/b/parameters/template: a template file must not use '..'" in result.stderr
