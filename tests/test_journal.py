"""The journal (events.jsonl) and the state fold: round trips, concurrent appenders,
torn tails, damage, and the state.json cache — and what `status` does with a damaged
journal."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, write_definition

from workflow_cli.errors import ExitCode, JournalCorruptError
from workflow_cli.store.instances import STATE_FILE, create_instance, load_state
from workflow_cli.store.journal import Event, Journal, decode_line, encode_record
from workflow_cli.store.state import empty_state, fold
from workflow_cli.store.workspace import Workspace


class FakeClock:
    """A clock that moves one millisecond per reading."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def journal_at(path: Path) -> Journal:
    return Journal(path, FakeClock())


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def read_all(path: Path) -> list[Event]:
    return journal_at(path).read_new()


def note(i: int) -> Event:
    return {"type": "note", "n": i, "text": f"événement {i}", "nested": {"list": [i, None]}}


def write_events(path: Path, count: int) -> list[Event]:
    journal = journal_at(path)
    written: list[Event] = []
    for i in range(count):
        _, new = journal.append([note(i)])
        written.extend(new)
    return written


# -- append and read ----------------------------------------------------------------


def test_append_then_read_round_trips_with_contiguous_seq(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = journal_at(path)
    external, first = journal.append([note(0)])
    assert external == []
    external, batch = journal.append([note(1), note(2), note(3)])
    assert external == []
    _, empty = journal.append([])
    assert empty == []
    written = first + batch
    assert [e["seq"] for e in written] == [1, 2, 3, 4]
    assert journal.last_seq == 4
    assert journal.offset == path.stat().st_size

    events = read_all(path)
    assert events == written
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["n"] for e in events] == [0, 1, 2, 3]
    assert events[0]["text"] == "événement 0"
    # One object per line, each ending in its checksum.
    lines = lines_of(path)
    assert len(lines) == 4
    for line in lines:
        assert line.endswith(b'"}\n')
        assert b',"crc":"' in line
        assert json.loads(line)["seq"] >= 1


def test_read_new_only_returns_what_is_new(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = journal_at(path)
    reader = journal_at(path)
    assert reader.read_new() == []  # no file yet
    writer.append([note(0), note(1)])
    assert [e["seq"] for e in reader.read_new()] == [1, 2]
    assert reader.read_new() == []
    writer.append([note(2)])
    assert [e["seq"] for e in reader.read_new()] == [3]


def test_encode_and_decode_line_agree() -> None:
    record = {"seq": 7, "time": "t", "type": "x", "value": {"a": [1, 2.5, "ü", None]}}
    line = encode_record(record)
    decoded = decode_line(line, "here")
    assert decoded == record


def test_second_journal_on_same_file_gets_others_events_as_external(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    one = journal_at(path)
    two = journal_at(path)
    _, mine = one.append([note(0), note(1)])
    external, theirs = two.append([note(2)])
    assert [e["seq"] for e in external] == [1, 2]
    assert [e["n"] for e in external] == [0, 1]
    assert [e["seq"] for e in theirs] == [3]
    # And back the other way: the first one sees the second's event before its own.
    external, again = one.append([note(3)])
    assert [e["seq"] for e in external] == [3]
    assert [e["seq"] for e in again] == [4]
    events = read_all(path)
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["n"] for e in events] == [0, 1, 2, 3]
    assert mine[0]["seq"] == 1


# -- torn tails -----------------------------------------------------------------------


def test_torn_last_record_at_every_byte_is_ignored_then_cut(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl"
    write_events(whole, 4)
    data = whole.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    assert 0 < last_start < len(data)
    checked = 0
    for cut in range(last_start, len(data)):  # every length short of the whole record
        path = tmp_path / f"torn-{cut}.jsonl"
        path.write_bytes(data[:cut])
        events = read_all(path)
        assert [e["seq"] for e in events] == [1, 2, 3], cut
        assert [e["n"] for e in events] == [0, 1, 2], cut

        journal = journal_at(path)
        external, written = journal.append([{"type": "after", "cut": cut}])
        assert [e["seq"] for e in external] == [1, 2, 3]
        assert [e["seq"] for e in written] == [4]
        assert path.read_bytes()[:last_start] == data[:last_start]
        again = read_all(path)
        assert [e["seq"] for e in again] == [1, 2, 3, 4], cut
        assert again[-1]["type"] == "after" and again[-1]["cut"] == cut
        assert len(lines_of(path)) == 4
        path.unlink()
        checked += 1
    assert checked == len(data) - last_start


def test_torn_tail_seen_by_load_state_is_ignored(tmp_path: Path) -> None:
    journal_path = make_instance(tmp_path)
    data = journal_path.read_bytes()
    expected = load_state(journal_at(journal_path), use_cache=False)
    journal_path.write_bytes(data + encode_record({"seq": 99, "time": "t", "type": "x"})[:-5])
    (journal_path.parent / STATE_FILE).unlink()
    assert load_state(journal_at(journal_path)) == expected
    assert load_state(journal_at(journal_path), use_cache=False) == expected


# -- damage ---------------------------------------------------------------------------


def test_every_flipped_byte_in_a_middle_line_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    write_events(good, 5)
    lines = lines_of(good)
    start = sum(len(line) for line in lines[:2])
    end = start + len(lines[2])
    data = good.read_bytes()
    for position in range(start, end):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        path = tmp_path / "bad.jsonl"
        path.write_bytes(bytes(damaged))
        with pytest.raises(JournalCorruptError) as caught:
            read_all(path)
        assert str(path) in caught.value.message
        assert caught.value.exit_code == ExitCode.CORRUPT
        # Appending to a damaged journal is refused too, and writes nothing.
        with pytest.raises(JournalCorruptError):
            journal_at(path).append([note(99)])
        assert path.read_bytes() == bytes(damaged)


def raw_lines(tmp_path: Path, seqs: list[Any]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(encode_record({"seq": s, "time": "t", "type": "note"}) for s in seqs))
    return path


@pytest.mark.parametrize(
    "seqs",
    [[1, 2, 4], [2], [1, 1], [1, 3, 4], [1, 2, 2, 3], [0, 1], [1, "2"], [1, None]],
    ids=["gap", "starts-at-2", "repeat", "gap-early", "repeat-mid", "zero", "text", "null"],
)
def test_bad_sequence_numbers_are_refused(tmp_path: Path, seqs: list[Any]) -> None:
    path = raw_lines(tmp_path, seqs)
    with pytest.raises(JournalCorruptError) as caught:
        read_all(path)
    assert "sequence number" in caught.value.message
    assert str(path) in caught.value.message


def test_a_line_that_is_not_an_event_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, 2)
    with path.open("ab") as handle:
        handle.write(b"\n")  # an empty complete line
    with pytest.raises(JournalCorruptError):
        read_all(path)


# -- the state cache ------------------------------------------------------------------


def make_instance(tmp_path: Path) -> Path:
    """An instance with three tasks, partway through a run (events appended directly)."""
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    ws = Workspace.at(root)
    clock = FakeClock()
    instance_id = "inst-1"
    definition = {"id": "wf", "tasks": {"a": {}, "b": {}, "c": {}}}
    created = {
        "type": "instance_created",
        "instance": instance_id,
        "template": "wf",
        "workflow": "wf",
        "params": {"p": 1},
        "parent": None,
        "tasks": ["a", "b", "c"],
    }
    folder = create_instance(ws, instance_id, definition, created, clock)
    journal = Journal(folder / "events.jsonl", clock)
    journal.append([{"type": "run_started", "pid": 1, "recovered": False}])
    journal.append([{"type": "task_started", "task": "a", "attempt": 1}])
    journal.append(
        [{"type": "task_completed", "task": "a", "attempt": 1, "duration": 0.5, "output": [1]}]
    )
    journal.append([{"type": "task_started", "task": "b", "attempt": 1}])
    return folder / "events.jsonl"


def full_fold(journal_path: Path) -> dict[str, Any]:
    journal = journal_at(journal_path)
    state = fold(journal.read_new(), empty_state())
    state["offset"] = journal.offset
    return dict(state)


def more_events(journal_path: Path) -> None:
    journal = journal_at(journal_path)
    journal.read_new()
    journal.append(
        [
            {"type": "task_failed", "task": "b", "attempt": 1, "error": {"message": "no"}},
            {"type": "task_skipped", "task": "c", "reason": "dependency 'b' failed"},
            {"type": "run_ended", "state": "failed", "reason": "task 'b' failed"},
        ]
    )


def test_fresh_cache_matches_the_full_fold(tmp_path: Path) -> None:
    journal_path = make_instance(tmp_path)
    state_path = journal_path.with_name(STATE_FILE)
    state = load_state(journal_at(journal_path), use_cache=False)
    state_path.write_text(json.dumps(state))
    assert load_state(journal_at(journal_path)) == full_fold(journal_path)
    assert state["tasks"]["a"]["state"] == "completed"
    assert state["tasks"]["b"]["state"] == "running"
    assert state["state"] == "running"


CacheDamage = Callable[[Path, bytes], object]


def edited(old: bytes, **changes: Any) -> str:
    """The cache `old` with some fields changed (None: removed)."""
    value = {**json.loads(old), **changes}
    return json.dumps({k: v for k, v in value.items() if v is not None})


def replace_with_folder(path: Path, old: bytes) -> None:
    path.unlink()
    path.mkdir()


CACHE_DAMAGE: dict[str, CacheDamage] = {
    "stale": lambda path, old: path.write_bytes(old),
    "deleted": lambda path, old: path.unlink(),
    "empty": lambda path, old: path.write_bytes(b""),
    "not-json": lambda path, old: path.write_bytes(b"\x00\xffnot json{"),
    "half-written": lambda path, old: path.write_bytes(old[: len(old) // 2]),
    "a-list": lambda path, old: path.write_bytes(b"[1, 2, 3]"),
    "empty-object": lambda path, old: path.write_bytes(b"{}"),
    "offset-text": lambda path, old: path.write_text(edited(old, offset="12")),
    "seq-missing": lambda path, old: path.write_text(edited(old, seq=None)),
    "tasks-list": lambda path, old: path.write_text(edited(old, tasks=[])),
    "offset-mid-line": lambda path, old: path.write_text(
        edited(old, offset=json.loads(old)["offset"] + 7)
    ),
    "offset-negative": lambda path, old: path.write_text(edited(old, offset=-5)),
    "a-folder": replace_with_folder,
}


@pytest.mark.parametrize("damage", sorted(CACHE_DAMAGE))
def test_bad_cache_is_rebuilt_as_the_full_fold(tmp_path: Path, damage: str) -> None:
    journal_path = make_instance(tmp_path)
    state_path = journal_path.with_name(STATE_FILE)
    old = state_path.read_bytes()  # written at creation: only instance_created folded
    assert json.loads(old)["seq"] == 1
    more_events(journal_path)
    CACHE_DAMAGE[damage](state_path, old)

    expected = full_fold(journal_path)
    got = load_state(journal_at(journal_path))
    assert got == expected
    assert got["seq"] == 8
    assert got["state"] == "failed"
    assert [got["tasks"][t]["state"] for t in "abc"] == ["completed", "failed", "skipped"]
    assert got["tasks"]["a"]["output"] == [1]
    assert load_state(journal_at(journal_path), use_cache=False) == expected


def test_stale_cache_beyond_a_damaged_line_is_refused(tmp_path: Path) -> None:
    journal_path = make_instance(tmp_path)
    more_events(journal_path)
    lines = lines_of(journal_path)
    damaged = lines[3].replace(b'"task":"a"', b'"task":"b"')  # checksum no longer matches
    assert damaged != lines[3]
    lines[3] = damaged
    journal_path.write_bytes(b"".join(lines))
    with pytest.raises(JournalCorruptError):
        load_state(journal_at(journal_path))
    with pytest.raises(JournalCorruptError):
        load_state(journal_at(journal_path), use_cache=False)


# -- through the CLI ------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder`, with the bytes of each file."""
    found: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        found[str(path.relative_to(folder))] = path.read_bytes() if path.is_file() else None
    return found


@pytest.mark.parametrize("cache", ["stale", "deleted"])
def test_status_refuses_a_damaged_journal_and_changes_nothing(
    workspace: Path, cli: Callable[..., Result], cache: str
) -> None:
    tasks = {
        "first": {"action": "agent_task", "agent_id": "echo", "parameters": {"n": 1}},
        "second": {
            "action": "agent_task",
            "agent_id": "echo",
            "parameters": {"n": "{{ steps.first.output.n }}"},
            "dependencies": ["first"],
        },
        "third": {
            "action": "condition_check",
            "parameters": {"expression": "steps.second.output.n == 1"},
            "dependencies": ["second"],
        },
    }
    path = write_definition(workspace, tasks)
    created = cli("create", str(path), "--json")
    assert created.exit_code == 0, created
    instance_id = created.json()["id"]
    folder = workspace / "instances" / instance_id
    stale_cache = (folder / STATE_FILE).read_bytes()
    ran = cli("start", instance_id, "--json")
    assert ran.exit_code == 0, ran
    assert cli("status", instance_id, "--json").json()["state"] == "completed"

    journal_path = folder / "events.jsonl"
    lines = lines_of(journal_path)
    assert len(lines) >= 8
    middle = len(lines) // 2
    lines[middle] = lines[middle].replace(b'"type":"task_', b'"type":"tusk_', 1)
    assert lines[middle] != lines_of(journal_path)[middle]
    journal_path.write_bytes(b"".join(lines))
    if cache == "stale":
        (folder / STATE_FILE).write_bytes(stale_cache)
    else:
        (folder / STATE_FILE).unlink()
    before = snapshot(workspace)

    for args in (["status", instance_id], ["status", instance_id, "--json"], ["list"]):
        result = cli(*args)
        assert result.exit_code == int(ExitCode.CORRUPT), (args, result)
        assert str(journal_path) in result.stderr, result.stderr
        assert "damaged" in result.stderr
        assert "Traceback" not in result.stderr
        assert snapshot(workspace) == before

    # A runner is refused as well, before it writes anything.
    result = cli("resume", instance_id)
    assert result.exit_code == int(ExitCode.CORRUPT), result
    assert str(journal_path) in result.stderr
    assert snapshot(workspace) == before


def test_status_through_a_subprocess_names_the_damaged_file(
    workspace: Path, cli: Callable[..., Result], cli_process: Callable[..., Any]
) -> None:
    path = write_definition(
        workspace,
        {f"t{i}": {"action": "agent_task", "agent_id": "echo", "parameters": {}} for i in range(3)},
    )
    instance_id = cli("create", str(path), "--json").json()["id"]
    assert cli("start", instance_id, "--json").exit_code == 0
    folder = workspace / "instances" / instance_id
    journal_path = folder / "events.jsonl"
    data = bytearray(journal_path.read_bytes())
    second_line = data.index(b"\n") + 1
    data[second_line + 3] ^= 0x20
    journal_path.write_bytes(bytes(data))
    (folder / STATE_FILE).unlink()
    before = snapshot(folder)
    done = cli_process("status", instance_id)
    assert done.returncode == int(ExitCode.CORRUPT), done
    assert str(journal_path) in done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(folder) == before


def test_instance_folder_copy_reads_the_same(tmp_path: Path) -> None:
    """The journal holds everything: a copied folder without state.json folds the same."""
    journal_path = make_instance(tmp_path)
    more_events(journal_path)
    copy = tmp_path / "copy"
    shutil.copytree(journal_path.parent, copy)
    (copy / STATE_FILE).unlink()
    original = load_state(journal_at(journal_path))
    copied = load_state(journal_at(copy / "events.jsonl"))
    assert copied == original


def test_a_cache_ahead_of_its_journal_is_rebuilt(cli, workspace):
    from workflow_cli.store.instances import load_state
    from workflow_cli.store.journal import Journal

    path = workspace / "wf.json"
    path.write_text(
        json.dumps(
            {
                "id": "w",
                "name": "w",
                "version": "1",
                "schema_version": "2.0.0",
                "tasks": {"a": {"action": "condition_check", "parameters": {"expression": "1"}}},
            }
        )
    )
    instance = cli("run", str(path), "--json").json()["id"]
    journal_path = workspace / "instances" / instance / "events.jsonl"
    lines = journal_path.read_bytes().splitlines(keepends=True)
    journal_path.write_bytes(b"".join(lines[:2]))  # a power cut lost the tail
    state = load_state(Journal(journal_path, lambda: None))  # type: ignore[arg-type,return-value]
    assert state["state"] == "running"
    assert state["seq"] == 2


def test_one_encoder_writes_what_its_encoder_writes() -> None:
    import json

    from workflow_cli.store.journal import one_encoder

    values: list[Any] = [
        {"seq": 1, "type": "task_completed", "output": {"é": ["\n", "\u2028", 1.5, 10**30]}},
        [None, True, False, -0.0, 1e300, "", {}, []],
        'text "quoted" \\ \x00',
        {"nan": float("nan"), "inf": float("-inf")},
    ]
    for encoder in (
        json.JSONEncoder(ensure_ascii=False, separators=(",", ":")),
        json.JSONEncoder(ensure_ascii=False),
    ):
        encode = one_encoder(encoder)
        assert encode is not encoder.encode  # the C encoder made once
        for value in values:
            assert encode(value) == encoder.encode(value)
    strict = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
    with pytest.raises(ValueError):
        one_encoder(strict)(values[3])
    ascii_only = json.JSONEncoder()  # not the kind it serves: the encoder's own way
    assert one_encoder(ascii_only) == ascii_only.encode
