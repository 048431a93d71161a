"""Records in files: reading CSV, JSON and JSON lines, and writing inside the workspace.

Inputs are named as `resolve_input` takes them (workspace-relative, or ``package:FILE``
for the samples in ``workflow_cli/data``); outputs are written atomically inside the
workspace.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from workflow_cli.engine.actions.base import ActionFailed, TaskCall
from workflow_cli.engine.agents.builtin.parameters import Record, bad, bad_data, log, type_name
from workflow_cli.engine.paths import read_input, store_file

_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)$")
# The largest input file a built-in agent reads (it holds all the records in memory).
MAX_INPUT_BYTES = 256 * 1024 * 1024
_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def format_of(path: str, given: Any, name: str) -> str:
    """The format parameter `name` gives (`given`), else the one `path`'s suffix tells."""
    if given is not None:
        if given not in ("csv", "json", "jsonl"):
            raise bad(name, f"must be 'csv', 'json' or 'jsonl', not {given!r}")
        return str(given)
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise bad(name, f"is needed: the format of '{path}' cannot be told from its suffix")
    return _FORMATS[suffix]


def read_records(call: TaskCall, source: str, fmt: str) -> list[Record]:
    """The records in file `source` (see `read_input`), which is in format `fmt`."""
    try:
        text = read_input(call.workspace, source, MAX_INPUT_BYTES).decode("utf-8-sig")
    except ActionFailed as exc:
        if exc.kind != "not_found":
            raise
        raise ActionFailed(f"no file '{source}'", kind="path", retryable=False) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ActionFailed(f"cannot read '{source}': {exc}", kind="io") from exc
    rows = _read_csv(text, source) if fmt == "csv" else _read_json(text, source, fmt)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise bad_data(f"{source}: record {index} is {type_name(row)}, not an object")
    return rows


def _convert_cell(text: str | None) -> Any:
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return None
    if _INT.match(stripped):
        return int(stripped)
    if _FLOAT.match(stripped):
        return float(stripped)
    return text


def _read_csv(text: str, source: str) -> list[Record]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        return []
    records = []
    for row in reader:
        if None in row:
            raise bad_data(f"{source}: line {reader.line_num} has more values than the header")
        records.append({key: _convert_cell(value) for key, value in row.items()})
    return records


def _read_json(text: str, source: str, fmt: str) -> list[Any]:
    try:
        if fmt == "jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except ValueError as exc:
        raise bad_data(f"{source} is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if not isinstance(data, list):
        raise bad_data(f"{source} must hold a JSON array of records")
    return data


def fields_of(records: list[Record]) -> list[str]:
    """Every field name, in the order first seen."""
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            seen.setdefault(key, None)
    return list(seen)


def json_bytes(value: Any) -> bytes:
    """`value` as indented JSON text, the way every JSON file written here looks."""
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def encode_records(records: list[Record], fmt: str, fields: list[str] | None) -> bytes:
    """`records` as a file in format `fmt`; a CSV file has the columns `fields` (default:
    every field seen)."""
    if fmt == "json":
        return json_bytes(records)
    if fmt == "jsonl":
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        return "".join(line + "\n" for line in lines).encode("utf-8")
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer,
        fieldnames=fields or fields_of(records),
        extrasaction="ignore",
        lineterminator="\n",
    )
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buffer.getvalue().encode("utf-8")


def write_file(call: TaskCall, name: str, data: bytes) -> dict[str, Any]:
    """Write `data` atomically to workspace path `name` (race-free, see
    `engine.paths.store_file`); its path, size and checksum."""

    def fill(handle: BinaryIO) -> None:
        handle.write(data)

    try:
        store_file(call.workspace, name, fill, overwrite=True)
    except OSError as exc:
        raise ActionFailed(f"cannot write '{name}': {exc.strerror or exc}", kind="io") from exc
    relative = PurePosixPath(name).as_posix()
    log(call, f"wrote {len(data)} bytes to {relative}")
    return {"path": relative, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
