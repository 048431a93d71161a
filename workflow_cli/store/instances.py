"""Instances on disk: create one atomically, load its definition and state, add events."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from workflow_cli.errors import StateError, WorkspaceError
from workflow_cli.store import files, status_cache
from workflow_cli.store.files import fsync_dir, seal_tail, unseal, write_atomic
from workflow_cli.store.journal import Clock, Journal, Record, one_encoder
from workflow_cli.store.state import State, empty_state, fold
from workflow_cli.store.workspace import Workspace

DEFINITION_FILE = "definition.json"
JOURNAL_FILE = "events.jsonl"
STATE_FILE = "state.json"
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def create_instance(
    workspace: Workspace,
    instance_id: str,
    definition: dict[str, Any],
    created: Record,
    clock: Clock,
) -> Path:
    """Write a new instance folder; it appears whole (a rename) or not at all."""
    final = workspace.instance_dir(instance_id)
    if final.exists():
        raise StateError(f"instance {instance_id} already exists")
    try:
        workspace.private_folder(workspace.instances_dir)
        staging = workspace.instances_dir / f".new-{instance_id}"
        staging.mkdir(mode=0o700)
    except OSError as exc:
        raise WorkspaceError(
            f"cannot create an instance in {workspace.instances_dir}: {exc}"
        ) from exc
    try:
        (staging / "logs").mkdir(mode=0o700)
        # The folder is new and private: nothing to clean, and its files are made durable
        # together (each file, then the folder once) before it is renamed into place. The
        # caches need not be: they are sealed, and one lost or torn is rebuilt from the
        # journal.
        write_atomic(
            staging / DEFINITION_FILE,
            definition_text(definition).encode("utf-8"),
            durable=False,
            clean=False,
        )
        _fsync_file(staging / DEFINITION_FILE)
        journal = Journal(staging / JOURNAL_FILE, clock)
        _, written = journal.append([created])  # synced to disk by the journal
        journal.close()
        save_state_cache(journal, fold(written), clean=False)
        fsync_dir(staging)
        os.rename(staging, final)
        fsync_dir(workspace.instances_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_encode_value = one_encoder(_ENCODER)


def definition_text(definition: dict[str, Any]) -> str:
    """A definition as ``definition.json`` holds it: one field per line and one task per
    line, readable and written by the C encoder however many tasks there are (indented
    JSON is encoded in Python: seconds for 100,000 tasks)."""

    dumps = _encode_value
    key_text = json.encoder.encode_basestring  # a task id or a field name: text

    def field(key: str, value: Any) -> str:
        if key == "tasks" and isinstance(value, dict) and value:
            tasks = ",\n".join(
                f"    {key_text(task_id)}: {dumps(task)}" for task_id, task in value.items()
            )
            return f'  "tasks": {{\n{tasks}\n  }}'
        return f"  {key_text(key)}: {dumps(value)}"

    return "{\n" + ",\n".join(field(k, v) for k, v in definition.items()) + "\n}\n"


def load_definition(
    workspace: Workspace, instance_id: str, *, as_written: bool = False
) -> dict[str, Any]:
    """The instance's definition as the engine reads it: on an older schema version it is
    migrated in memory (the file stays as it is); `as_written` gives the file's content."""
    path = workspace.instance_dir(instance_id) / DEFINITION_FILE
    try:
        value = json.loads(files.read_text(path))
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise WorkspaceError(f"{path} is not a workflow definition")
    if as_written:
        return value
    # Imported here: status, list and the other readers of state never need it.
    from workflow_cli.definition.migrations import upgrade

    return upgrade(value)


def open_journal(workspace: Workspace, instance_id: str, clock: Clock) -> Journal:
    return Journal(workspace.instance_dir(instance_id) / JOURNAL_FILE, clock)


def load_state(journal: Journal, *, use_cache: bool = True) -> State:
    """The instance's state: the cached fold plus whatever the journal holds after it.

    The cache is used only when it is whole (its own checksum holds) and the journal's
    bytes up to its offset are the ones it was made from (their digest matches); any
    other cache is rebuilt from the journal, every line of which is then read and
    checked, so damage anywhere is found (JournalCorruptError). With
    ``use_cache=False`` (what a runner does) the whole journal is always read.
    """
    state: State | None = None
    if use_cache:
        cached = read_state_cache(journal.path.with_name(STATE_FILE))
        if cached is not None:
            state, digest = cached
            if not journal.skip_to(state["offset"], state["seq"], digest):
                state = None  # damaged, stale, ahead of its journal, or edited by hand
    if state is not None:
        try:
            fold(journal.read_new(), state)
        except Exception:
            state = None
    if state is None:
        journal.rewind()
        state = fold(journal.read_new(), empty_state())
    state["offset"] = journal.offset
    require_created(journal, state)
    return state


def require_created(journal: Journal, state: State) -> None:
    """A journal (emptied, or lost) without the event that makes an instance is refused."""
    if not state.get("id"):
        raise WorkspaceError(f"{journal.path} holds no instance_created event")


# state.json is the state as JSON with one more key, "journal" (the digest of the journal
# bytes it stands for), sealed with its checksum (`store.files.unseal`), so a cache torn,
# damaged or edited by hand is never taken for the journal's fold.


def read_state_cache(path: Path) -> tuple[State, str] | None:
    """The cached state and the journal digest it stands for, when the cache is whole (a
    folder or a named pipe in its place is no cache: the next save replaces it)."""
    try:
        value = unseal(files.read_bytes(path))
    except (OSError, WorkspaceError):
        return None
    if value is None or not isinstance(value.get("offset"), int):
        return None
    if not isinstance(value.get("seq"), int) or not isinstance(value.get("tasks"), dict):
        return None
    digest = value.pop("journal", None)
    return (cast(State, value), digest) if isinstance(digest, str) else None


def save_state_cache(
    journal: Journal, state: State, *, durable: bool = False, clean: bool = True
) -> None:
    """Write `state` as the cache of the journal up to the point the journal has read."""
    state["offset"] = journal.offset
    # Compact: Python's C JSON encoder only serves unindented output, and a cache of a
    # 10,000-task run is rewritten every second.
    # The file is the JSON without its closing brace, the checksum mark and the
    # checksum: written in pieces, so that a cache of tens of megabytes is in memory
    # twice at most (the text, then its bytes), not four times.
    body = json.dumps({**state, "journal": journal.digest()}, ensure_ascii=False).encode()
    raw = memoryview(body)[:-1]
    tail = seal_tail(raw)
    _write_cache(journal.path.with_name(STATE_FILE), (raw, tail), durable=durable, clean=clean)
    del raw, body
    save_status_cache(journal, state, durable=durable, clean=clean)


def save_status_cache(
    journal: Journal, state: State, *, durable: bool = False, clean: bool = True
) -> None:
    """Write ``status.json`` for the journal as written so far, for an instance large
    enough to have one (the runner writes it alone too, between the rarer writes of the
    whole state)."""
    state["offset"] = journal.offset
    brief = status_cache.cache_bytes(state, journal.digest(), status_cache.file_mark(journal))
    if brief is not None:
        path = journal.path.with_name(status_cache.STATUS_FILE)
        _write_cache(path, brief, durable=durable, clean=clean)


def _write_cache(
    path: Path, data: bytes | Sequence[bytes | memoryview], *, durable: bool, clean: bool
) -> None:
    """Write a cache of the journal (`write_atomic`'s `data`). A folder in its place is
    not a cache: whatever was put there goes, the cache is ours."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    write_atomic(path, data, durable=durable, clean=clean)


def append_events(journal: Journal, decide: Callable[[State], Sequence[Record]]) -> State:
    """Append what `decide` makes of the current state, all under the journal lock.

    This is how commands other than the runner change an instance: `decide` sees the
    state no one else can change meanwhile, raises if the change is not allowed, and
    returns the events to record. Returns the state after them, cached to state.json.
    """
    with journal.locked():
        state = load_state(journal)
        _, written = journal.append(decide(state))
        fold(written, state)
        save_state_cache(journal, state)
    return state
