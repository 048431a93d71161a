"""The ``file_operation`` action: outputs, effects on disk, and paths it refuses."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_call

from workflow_cli.engine.actions.base import ActionFailed, CheckContext
from workflow_cli.engine.actions.file_operation import ACTION
from workflow_cli.store.workspace import Workspace

Run = Callable[..., Any]


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    """Runs one attempt of a file_operation task with the given parameters."""
    log_path = tmp_path / "task.log"
    with open(log_path, "a", encoding="utf-8") as log:

        def run(**parameters: Any) -> Any:
            call = make_call(tmp_path, log, log_path, task_id="files", parameters=parameters)
            try:
                return ACTION.run(call)
            finally:
                log.flush()

        yield run


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A folder beside the workspace (not in it) holding a file, and a link to it inside."""
    folder = tmp_path.parent / f"{tmp_path.name}-outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("outside", encoding="utf-8")
    os.symlink(folder, tmp_path / "escape")
    yield folder
    shutil.rmtree(folder)


def fails(run: Run, **parameters: Any) -> ActionFailed:
    with pytest.raises(ActionFailed) as caught:
        run(**parameters)
    return caught.value


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def check(**parameters: Any) -> list[tuple[str, str]]:
    ctx = CheckContext(
        task_id="files",
        task={"action": "file_operation", "parameters": parameters},
        pointer="/tasks/0",
        agent_names=frozenset(),
    )
    return [(p.pointer, p.message) for p in ACTION.check(ctx)]


# -- write ----------------------------------------------------------------------------


def test_write_text_is_utf8_and_reports_bytes_and_hash(run: Run, tmp_path: Path) -> None:
    output = run(operation="write", path="out/report.txt", content="héllo\n")
    data = "héllo\n".encode()
    assert output == {
        "path": "out/report.txt",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert (tmp_path / "out" / "report.txt").read_bytes() == data
    assert temp_files(tmp_path) == []


def test_write_other_json_values_as_indented_json(run: Run, tmp_path: Path) -> None:
    run(operation="write", path="data.json", content={"b": [1, 2], "a": "é"})
    text = (tmp_path / "data.json").read_text(encoding="utf-8")
    assert text == json.dumps({"b": [1, 2], "a": "é"}, indent=2, ensure_ascii=False) + "\n"
    run(operation="write", path="number.json", content=42)
    assert (tmp_path / "number.json").read_text(encoding="utf-8") == "42\n"


def test_write_replaces_by_default(run: Run, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old", encoding="utf-8")
    run(operation="write", path="a.txt", content="new")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "new"
    assert temp_files(tmp_path) == []


def test_write_without_overwrite_keeps_an_existing_file(run: Run, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old", encoding="utf-8")
    failure = fails(run, operation="write", path="a.txt", content="new", overwrite=False)
    assert (failure.kind, failure.retryable) == ("exists", False)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "old"
    assert temp_files(tmp_path) == []
    run(operation="write", path="b.txt", content="fresh", overwrite=False)
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "fresh"


def test_a_failed_write_leaves_the_old_content_and_no_temp_file(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("old", encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    failure = fails(run, operation="write", path="a.txt", content="new")
    assert failure.kind == "io"
    assert "No space left" in failure.message
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "old"
    assert temp_files(tmp_path) == []


def test_write_onto_a_folder_is_refused(run: Run, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    failure = fails(run, operation="write", path="folder", content="x")
    assert (failure.kind, failure.retryable) == ("not_a_file", False)


# -- read -----------------------------------------------------------------------------


def test_read_text(run: Run, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes("naïve\n".encode())
    assert run(operation="read", path="./in.txt") == {
        "path": "in.txt",
        "content": "naïve\n",
        "bytes": 7,
    }


def test_read_json(run: Run, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text('{"score": 71, "tags": ["a"]}', encoding="utf-8")
    output = run(operation="read", path="in.json", encoding="json")
    assert output["content"] == {"score": 71, "tags": ["a"]}


def test_read_a_missing_file_names_it(run: Run) -> None:
    failure = fails(run, operation="read", path="nope/missing.txt")
    assert (failure.kind, failure.retryable) == ("not_found", False)
    assert "nope/missing.txt" in failure.message


@pytest.mark.parametrize(
    ("raw", "encoding"), [(b"\xff\xfe\x00bad", "text"), (b"{not json", "json")]
)
def test_read_content_that_does_not_decode(
    run: Run, tmp_path: Path, raw: bytes, encoding: str
) -> None:
    (tmp_path / "bad").write_bytes(raw)
    failure = fails(run, operation="read", path="bad", encoding=encoding)
    assert (failure.kind, failure.retryable) == ("decode", False)


# -- copy and move --------------------------------------------------------------------


def test_copy_keeps_the_source_and_its_mode(run: Run, tmp_path: Path) -> None:
    source = tmp_path / "src.sh"
    source.write_text("#!/bin/sh\n", encoding="utf-8")
    source.chmod(0o750)
    output = run(operation="copy", path="src.sh", destination="bin/copy.sh")
    assert output == {"source": "src.sh", "destination": "bin/copy.sh", "bytes": 10}
    copy = tmp_path / "bin" / "copy.sh"
    assert copy.read_text(encoding="utf-8") == "#!/bin/sh\n"
    assert source.read_text(encoding="utf-8") == "#!/bin/sh\n"
    assert copy.stat().st_mode & 0o777 == 0o750
    assert temp_files(tmp_path) == []


def test_copy_without_overwrite_keeps_the_destination(run: Run, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("A", encoding="utf-8")
    (tmp_path / "b").write_text("B", encoding="utf-8")
    failure = fails(run, operation="copy", path="a", destination="b", overwrite=False)
    assert (failure.kind, failure.retryable) == ("exists", False)
    assert (tmp_path / "b").read_text(encoding="utf-8") == "B"
    assert temp_files(tmp_path) == []
    run(operation="copy", path="a", destination="b")
    assert (tmp_path / "b").read_text(encoding="utf-8") == "A"


def test_move_renames(run: Run, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("12345", encoding="utf-8")
    output = run(operation="move", path="a.txt", destination="archive/a.txt")
    assert output == {"source": "a.txt", "destination": "archive/a.txt", "bytes": 5}
    assert not (tmp_path / "a.txt").exists()
    assert (tmp_path / "archive" / "a.txt").read_text(encoding="utf-8") == "12345"


def test_move_without_overwrite_keeps_both(run: Run, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("A", encoding="utf-8")
    (tmp_path / "b").write_text("B", encoding="utf-8")
    failure = fails(run, operation="move", path="a", destination="b", overwrite=False)
    assert (failure.kind, failure.retryable) == ("exists", False)
    assert (tmp_path / "a").read_text(encoding="utf-8") == "A"
    assert (tmp_path / "b").read_text(encoding="utf-8") == "B"


def test_move_of_a_link_moves_the_link(run: Run, tmp_path: Path) -> None:
    (tmp_path / "target.txt").write_text("T", encoding="utf-8")
    os.symlink("target.txt", tmp_path / "link")
    run(operation="move", path="link", destination="link2")
    assert (tmp_path / "link2").is_symlink()
    assert (tmp_path / "target.txt").read_text(encoding="utf-8") == "T"


@pytest.mark.parametrize("operation", ["copy", "move"])
def test_copy_or_move_of_a_missing_file(run: Run, operation: str) -> None:
    failure = fails(run, operation=operation, path="ghost.txt", destination="x.txt")
    assert (failure.kind, failure.retryable) == ("not_found", False)
    assert "ghost.txt" in failure.message


@pytest.mark.parametrize("operation", ["copy", "move"])
def test_copy_or_move_of_a_folder_is_refused(run: Run, tmp_path: Path, operation: str) -> None:
    (tmp_path / "folder").mkdir()
    failure = fails(run, operation=operation, path="folder", destination="other")
    assert (failure.kind, failure.retryable) == ("not_a_file", False)
    assert (tmp_path / "folder").is_dir()


# -- delete ---------------------------------------------------------------------------


def test_delete_a_file_then_again(run: Run, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    assert run(operation="delete", path="a.txt") == {"path": "a.txt", "deleted": True}
    assert not (tmp_path / "a.txt").exists()
    assert run(operation="delete", path="a.txt") == {"path": "a.txt", "deleted": False}


def test_delete_folders_only_when_empty(run: Run, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x", encoding="utf-8")
    failure = fails(run, operation="delete", path="full")
    assert (failure.kind, failure.retryable) == ("not_empty", False)
    assert (tmp_path / "full" / "f").exists()
    (tmp_path / "empty").mkdir()
    assert run(operation="delete", path="empty")["deleted"] is True
    assert not (tmp_path / "empty").exists()


def test_delete_of_a_link_keeps_its_target(run: Run, tmp_path: Path) -> None:
    (tmp_path / "target.txt").write_text("T", encoding="utf-8")
    os.symlink("target.txt", tmp_path / "link")
    assert run(operation="delete", path="link")["deleted"] is True
    assert not os.path.lexists(tmp_path / "link")
    assert (tmp_path / "target.txt").exists()


@pytest.mark.parametrize("operation", ["delete", "list"])
@pytest.mark.parametrize("path", [".", "./", "sub/.."])
def test_the_workspace_root_is_refused(run: Run, tmp_path: Path, operation: str, path: str) -> None:
    (tmp_path / "sub").mkdir()
    failure = fails(run, operation=operation, path=path)
    assert (failure.kind, failure.retryable) == ("path", False)
    assert tmp_path.is_dir()


# -- list -----------------------------------------------------------------------------


def test_list_sorted_names_with_a_pattern(run: Run, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "deep").mkdir(parents=True)
    for name in ("b.csv", "a.csv", "notes.txt", "deep/c.csv"):
        (folder / name).write_text("x", encoding="utf-8")
    assert run(operation="list", path="in") == {
        "path": "in",
        "entries": ["a.csv", "b.csv", "deep", "notes.txt"],
        "count": 4,
    }
    assert run(operation="list", path="in", pattern="*.csv")["entries"] == ["a.csv", "b.csv"]
    assert run(operation="list", path="in", pattern="**/*.csv")["entries"] == [
        "a.csv",
        "b.csv",
        "deep/c.csv",
    ]


def test_list_of_a_missing_folder_or_a_file(run: Run, tmp_path: Path) -> None:
    assert fails(run, operation="list", path="none").kind == "not_found"
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert fails(run, operation="list", path="file").kind == "not_a_directory"


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "a/../../*"])
def test_list_refuses_patterns_that_leave_the_folder(
    run: Run, tmp_path: Path, pattern: str
) -> None:
    (tmp_path / "in").mkdir()
    failure = fails(run, operation="list", path="in", pattern=pattern)
    assert (failure.kind, failure.retryable) == ("path", False)


def test_list_does_not_look_through_links_leading_out(
    run: Run, tmp_path: Path, outside: Path
) -> None:
    (tmp_path / "in").mkdir()
    os.symlink(outside, tmp_path / "in" / "out")
    (tmp_path / "in" / "mine.txt").write_text("x", encoding="utf-8")
    output = run(operation="list", path="in", pattern="*/*")
    assert output["entries"] == []
    assert run(operation="list", path="in")["entries"] == ["mine.txt", "out"]


# -- refused paths --------------------------------------------------------------------

ESCAPES = ["/etc/passwd", "../sibling.txt", "in/../../sibling.txt", "bad\x00name", ""]
CALLS: list[dict[str, Any]] = [
    {"operation": "read"},
    {"operation": "write", "content": "x"},
    {"operation": "copy", "destination": "copy.txt"},
    {"operation": "move", "destination": "moved.txt"},
    {"operation": "delete"},
    {"operation": "list"},
]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("parameters", CALLS, ids=lambda p: p["operation"])
def test_paths_outside_the_workspace_are_refused(
    run: Run, path: str, parameters: dict[str, Any]
) -> None:
    failure = fails(run, path=path, **parameters)
    assert (failure.kind, failure.retryable) == ("path", False)


@pytest.mark.parametrize("parameters", CALLS, ids=lambda p: p["operation"])
def test_links_leading_out_are_refused(
    run: Run, tmp_path: Path, outside: Path, parameters: dict[str, Any]
) -> None:
    path = "escape" if parameters["operation"] == "list" else "escape/secret.txt"
    failure = fails(run, path=path, **parameters)
    assert (failure.kind, failure.retryable) == ("path", False)
    assert "outside" in failure.message
    assert [p.name for p in outside.iterdir()] == ["secret.txt"]
    assert (outside / "secret.txt").read_text(encoding="utf-8") == "outside"


@pytest.mark.parametrize("operation", ["copy", "move"])
@pytest.mark.parametrize("destination", ["../x.txt", "/tmp/x.txt", "escape/x.txt"])
def test_destinations_outside_are_refused(
    run: Run, tmp_path: Path, outside: Path, operation: str, destination: str
) -> None:
    (tmp_path / "a.txt").write_text("A", encoding="utf-8")
    failure = fails(run, operation=operation, path="a.txt", destination=destination)
    assert (failure.kind, failure.retryable) == ("path", False)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "A"
    assert not (outside / "x.txt").exists()


def test_bad_parameters_fail_without_retry(run: Run) -> None:
    assert fails(run, operation="shred", path="a").retryable is False
    assert fails(run, operation="read").retryable is False
    assert fails(run, operation="write", path="a").retryable is False
    assert fails(run, operation="copy", path="a").retryable is False
    assert fails(run, operation="write", path="a", content="x", overwrite="yes").retryable is False


def test_each_operation_logs_a_line(run: Run, tmp_path: Path) -> None:
    run(operation="write", path="a.txt", content="x")
    run(operation="delete", path="a.txt")
    lines = (tmp_path / "task.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("file_operation write a.txt")


# -- static checks --------------------------------------------------------------------


def test_check_accepts_valid_and_templated_tasks() -> None:
    assert check(operation="read", path="in/data.json", encoding="json") == []
    assert check(operation="write", path="{{ params.out }}", content="{{ steps.a.output }}") == []
    assert check(operation="copy", path="a", destination="b", overwrite=False) == []
    assert check(operation="{{ params.op }}", path="a") == []
    assert check(operation="list", path="in", pattern="**/*.csv") == []


def test_check_reports_missing_and_unknown_parameters() -> None:
    assert check() == [
        ("/tasks/0/parameters", "needs 'operation'"),
        ("/tasks/0/parameters", "needs 'path'"),
    ]
    assert check(operation="shred", path="a") == [
        ("/tasks/0/parameters/operation", "must be one of read, write, copy, move, delete, list")
    ]
    assert check(operation="move", path="a") == [("/tasks/0/parameters", "needs 'destination'")]
    assert check(operation="write", path="a") == [("/tasks/0/parameters", "needs 'content'")]
    assert [p for p, _ in check(operation="read", path="a", encoding="yaml")] == [
        "/tasks/0/parameters/encoding"
    ]
    assert [p for p, _ in check(operation="write", path="a", content="", overwrite="no")] == [
        "/tasks/0/parameters/overwrite"
    ]


@pytest.mark.parametrize("key", ["path", "destination"])
@pytest.mark.parametrize("value", ["/etc/passwd", "../up", "a/../../up"])
def test_check_reports_literal_paths_that_leave_the_workspace(key: str, value: str) -> None:
    parameters = {"operation": "copy", "path": "a", "destination": "b", key: value}
    problems = check(**parameters)
    assert [pointer for pointer, _ in problems] == [f"/tasks/0/parameters/{key}"]


def test_engine_folders_are_off_limits(tmp_path: Path) -> None:
    from workflow_cli.engine.actions.base import ActionFailed
    from workflow_cli.engine.paths import resolve_in_workspace

    workspace = Workspace(tmp_path)
    for name in ("instances/x/events.jsonl", "checkpoints/a.json", "monitoring", "./instances"):
        with pytest.raises(ActionFailed, match="engine's own"):
            resolve_in_workspace(workspace, name)
    assert resolve_in_workspace(workspace, "output/instances.json").name == "instances.json"


def test_written_files_are_readable_by_others(tmp_path: Path) -> None:
    """A user's file (mode=None) is 0644 or keeps the mode of the file it replaces; the
    engine's own records (the default) are readable by their owner only."""
    from workflow_cli.store.files import write_atomic

    target = tmp_path / "new.txt"
    write_atomic(target, b"x", mode=None)
    assert target.stat().st_mode & 0o777 == 0o644
    target.chmod(0o640)
    write_atomic(target, b"y", mode=None)
    assert target.stat().st_mode & 0o777 == 0o640
    record = tmp_path / "record.json"
    write_atomic(record, b"{}")
    assert record.stat().st_mode & 0o777 == 0o600
