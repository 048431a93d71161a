"""Built-in agents: small data steps that do real work, used by the shipped templates.

An agent is ``agent(parameters, call) -> output``: ``parameters`` are the task's rendered
parameters, the output is any JSON value. Bad parameters raise a non-retryable
`ActionFailed` naming the parameter; what a person may want to read goes to ``call.log``.
Inputs are read through `resolve_input` (workspace-relative, or ``package:FILE`` for the
samples in ``workflow_cli/data``); outputs are written atomically inside the workspace.

=================== ============================================ ==========================
agent               parameters (``[]`` = optional)               output
=================== ============================================ ==========================
extract_records     path, [format]                               records, count, fields,
                                                                 source, format
transform_records   records, operations                          records, count, dropped,
                                                                 drop_reasons
load_records        records, path, [format], [fields]            path, format, count,
                                                                 bytes, sha256
split_records       records, partitions                          partitions, sizes, count
process_partition   records, [partition], [group_by]             partition, count, fields,
                                                                 missing, numeric, groups
quality_check       stats, [rules], [fail_on_issues]             partition, count, passed,
                                                                 issues
aggregate_results   results, [checks], [output]                  partitions, count, fields,
                                                                 missing, numeric, groups,
                                                                 quality, report
assess_records      records, [required_fields], [non_negative]   score, total, valid,
                                                                 invalid, reasons
quarantine_records  records, clean_output, rejects_output,       clean, rejected
                    [required_fields], [non_negative]
build_request       title, amount, requester, [currency],        request_id, title, amount,
                    [description]                                currency, requester, ...
finalize_request    request, approvals, output                   path, status, request_id,
                                                                 approved_by, bytes, sha256
write_summary       output, summary                              path, bytes, sha256
echo                anything                                     the parameters
=================== ============================================ ==========================

A value is *missing* when the field is absent, null or an empty string.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

from workflow_cli.engine.actions.base import ActionFailed, TaskCall
from workflow_cli.engine.paths import resolve_in_workspace, resolve_input
from workflow_cli.store.files import write_atomic

Agent = Callable[[dict[str, Any], TaskCall], Any]
Record = dict[str, Any]

_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)$")
_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "min": min,
    "max": max,
}
_CASES: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
}
_QUALITY_RULES = frozenset({"required_fields", "non_negative", "min_count"})


# --- parameters -------------------------------------------------------------------------


def _bad(name: str, message: str) -> ActionFailed:
    return ActionFailed(f"parameter '{name}' {message}", kind="parameters", retryable=False)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _records(parameters: dict[str, Any], name: str = "records") -> list[Record]:
    value = parameters.get(name)
    if not isinstance(value, list):
        raise _bad(name, f"must be a list of records (objects), not {_type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise _bad(name, f"must hold objects; item {index} is {_type_name(item)}")
    return value


def _string(parameters: dict[str, Any], name: str, default: str | None = None) -> str:
    value = parameters.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, f"must be a non-empty string, not {value!r}")
    return value


def _optional_string(parameters: dict[str, Any], name: str) -> str | None:
    if parameters.get(name) is None:
        return None
    return _string(parameters, name)


def _names(
    parameters: dict[str, Any], name: str, default: list[str], *, label: str | None = None
) -> list[str]:
    value = parameters.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(label or name, f"must be a list of field names, not {value!r}")
    return value


def _integer(value: Any, name: str, *, minimum: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise _bad(name, f"must be an integer from {minimum} to {maximum}, not {value!r}")
    return value


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _log(call: TaskCall, message: str) -> None:
    call.log.write(message.rstrip("\n") + "\n")


def _tidy(value: float) -> float:
    """Round away binary noise (0.1 + 0.2) without hiding real precision."""
    return round(value, 6)


# --- reading and writing ----------------------------------------------------------------


def _format_of(path: str, given: Any, name: str) -> str:
    if given is not None:
        if given not in ("csv", "json", "jsonl"):
            raise _bad(name, f"must be 'csv', 'json' or 'jsonl', not {given!r}")
        return str(given)
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise _bad(name, f"is needed: the format of '{path}' cannot be told from its suffix")
    return _FORMATS[suffix]


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
            raise ActionFailed(
                f"{source}: line {reader.line_num} has more values than the header",
                kind="data",
                retryable=False,
            )
        records.append({key: _convert_cell(value) for key, value in row.items()})
    return records


def _read_json(text: str, source: str, fmt: str) -> list[Any]:
    try:
        if fmt == "jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except ValueError as exc:
        raise ActionFailed(
            f"{source} is not valid JSON: {exc}", kind="data", retryable=False
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if not isinstance(data, list):
        raise ActionFailed(
            f"{source} must hold a JSON array of records", kind="data", retryable=False
        )
    return data


def _fields_of(records: list[Record]) -> list[str]:
    """Every field name, in the order first seen."""
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            seen.setdefault(key, None)
    return list(seen)


def _encode(records: list[Record], fmt: str, fields: list[str] | None) -> bytes:
    if fmt == "json":
        return (json.dumps(records, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if fmt == "jsonl":
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        return "".join(line + "\n" for line in lines).encode("utf-8")
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer,
        fieldnames=fields or _fields_of(records),
        extrasaction="ignore",
        lineterminator="\n",
    )
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return buffer.getvalue().encode("utf-8")


def _write_file(call: TaskCall, name: str, data: bytes) -> dict[str, Any]:
    """Write `data` atomically to workspace path `name`; its path, size and checksum."""
    path = resolve_in_workspace(call.workspace, name)
    if path.is_dir():
        raise ActionFailed(f"'{name}' is a folder, not a file", kind="path", retryable=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    except OSError as exc:
        raise ActionFailed(f"cannot write '{name}': {exc.strerror or exc}", kind="io") from exc
    relative = path.relative_to(call.workspace.root.resolve()).as_posix()
    _log(call, f"wrote {len(data)} bytes to {relative}")
    return {"path": relative, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --- agents: extract, transform, load ---------------------------------------------------


def extract_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Read records from a CSV, JSON array or JSON-lines file.

    CSV cells that look like integers or decimals become numbers, empty cells null.
    """
    source = _string(parameters, "path")
    fmt = _format_of(source, parameters.get("format"), "format")
    path = resolve_input(call.workspace, source)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ActionFailed(f"no file '{source}'", kind="path", retryable=False) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ActionFailed(f"cannot read '{source}': {exc}", kind="io") from exc
    rows = _read_csv(text, source) if fmt == "csv" else _read_json(text, source, fmt)
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ActionFailed(
                f"{source}: record {index} is {_type_name(row)}, not an object",
                kind="data",
                retryable=False,
            )
    records: list[Record] = rows
    _log(call, f"read {len(records)} records from {source} ({fmt})")
    return {
        "records": records,
        "count": len(records),
        "fields": _fields_of(records),
        "source": source,
        "format": fmt,
    }


RowStep = Callable[[Record], Record | str]
"""One transform step: the changed record, or a reason (text) to drop it."""


def _compile_operation(op: Any, where: str) -> RowStep:
    if not isinstance(op, dict) or not isinstance(op.get("op"), str):
        raise _bad(where, "must be an object with 'op' (rename, require, filter, case, compute)")
    kind = op["op"]
    if kind == "rename":
        mapping = op.get("fields")
        if (
            not isinstance(mapping, dict)
            or not mapping
            or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items())
        ):
            raise _bad(f"{where}.fields", "must map old field names to new ones")
        return lambda r: {mapping.get(k, k): v for k, v in r.items()}
    if kind == "require":
        fields = _names(op, "fields", [], label=f"{where}.fields")
        if not fields:
            raise _bad(f"{where}.fields", "must list the fields a record needs")

        def require(record: Record) -> Record | str:
            for field in fields:
                if _is_missing(record.get(field)):
                    return f"missing {field}"
            return record

        return require
    if kind == "filter":
        field, compare, value = op.get("field"), op.get("compare"), op.get("value")
        if not isinstance(field, str) or not field:
            raise _bad(f"{where}.field", "must name a field")
        if compare not in _COMPARE:
            raise _bad(f"{where}.compare", f"must be one of {', '.join(_COMPARE)}")
        test = _COMPARE[compare]

        def keep(record: Record) -> Record | str:
            reason = f"{field} not {compare} {value!r}"
            actual = record.get(field)
            if _is_missing(actual):
                return f"missing {field}"
            try:
                return record if test(actual, value) else reason
            except TypeError:  # e.g. text compared with a number
                return reason

        return keep
    if kind == "case":
        fields = _names(op, "fields", [], label=f"{where}.fields")
        to = op.get("to")
        if not fields:
            raise _bad(f"{where}.fields", "must list the text fields to change")
        if to not in _CASES:
            raise _bad(f"{where}.to", f"must be one of {', '.join(_CASES)}")
        change = _CASES[to]

        def recase(record: Record) -> Record:
            return {
                k: change(v.strip()) if k in fields and isinstance(v, str) else v
                for k, v in record.items()
            }

        return recase
    if kind == "compute":
        return _compile_compute(op, where)
    raise _bad(f"{where}.op", f"'{kind}' is not one of rename, require, filter, case, compute")


def _compile_compute(op: dict[str, Any], where: str) -> RowStep:
    target, name, operands = op.get("field"), op.get("operator"), op.get("operands")
    digits = op.get("round")
    if not isinstance(target, str) or not target:
        raise _bad(f"{where}.field", "must name the field to compute")
    if name not in _ARITHMETIC:
        raise _bad(f"{where}.operator", f"must be one of {', '.join(_ARITHMETIC)}")
    if (
        not isinstance(operands, list)
        or len(operands) < 2
        or not all((isinstance(o, str) and o) or _is_number(o) for o in operands)
    ):
        raise _bad(f"{where}.operands", "must list two or more field names or numbers")
    if digits is not None:
        _integer(digits, f"{where}.round", minimum=0, maximum=12)
    combine = _ARITHMETIC[name]

    def compute(record: Record) -> Record:
        # Like SQL: a missing or non-numeric operand, or a division by zero, gives null.
        values = [record.get(o) if isinstance(o, str) else o for o in operands]
        numbers = [v for v in values if _is_number(v)]
        result: Any = None
        if len(numbers) == len(values):
            try:
                total = numbers[0]
                for value in numbers[1:]:
                    total = combine(total, value)
                result = round(total, digits) if digits is not None else total
            except ZeroDivisionError:
                result = None
        return {**record, target: result}

    return compute


def transform_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Apply declarative operations, in order, to every record.

    ``operations`` is a list of objects, each with ``op``:

    - ``{"op": "rename", "fields": {"old": "new"}}``
    - ``{"op": "require", "fields": [...]}`` drops records missing any of them
    - ``{"op": "filter", "field": F, "compare": ">=", "value": V}`` keeps records where
      ``F compare V`` holds (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``)
    - ``{"op": "case", "fields": [...], "to": "lower" | "upper" | "title"}`` (also strips)
    - ``{"op": "compute", "field": F, "operator": "multiply", "operands": ["a", "b", 2],
      "round": 2}`` with operators add, subtract, multiply, divide, min, max over fields
      or numbers; a missing or non-numeric operand or a division by zero gives null.
    """
    records = _records(parameters)
    operations = parameters.get("operations")
    if not isinstance(operations, list):
        raise _bad("operations", f"must be a list of operations, not {_type_name(operations)}")
    steps = [_compile_operation(op, f"operations[{i}]") for i, op in enumerate(operations)]
    kept: list[Record] = []
    reasons: dict[str, int] = {}
    for record in records:
        current, reason = record, None
        for step in steps:
            result = step(current)
            if isinstance(result, str):
                reason = result
                break
            current = result
        if reason is None:
            kept.append(current)
        else:
            reasons[reason] = reasons.get(reason, 0) + 1
    dropped = len(records) - len(kept)
    _log(call, f"{len(steps)} operations: kept {len(kept)} of {len(records)} records")
    for reason, count in reasons.items():
        _log(call, f"  dropped {count}: {reason}")
    return {"records": kept, "count": len(kept), "dropped": dropped, "drop_reasons": reasons}


def load_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Write records to a workspace file as JSON (an array), JSON lines or CSV, atomically."""
    records = _records(parameters)
    name = _string(parameters, "path")
    fmt = _format_of(name, parameters.get("format"), "format")
    fields = _names(parameters, "fields", []) or None
    written = _write_file(call, name, _encode(records, fmt, fields))
    return {**written, "format": fmt, "count": len(records)}


# --- agents: partitioned processing ---------------------------------------------------


def split_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Cut records into N contiguous partitions whose sizes differ by at most one."""
    records = _records(parameters)
    count = _integer(parameters.get("partitions"), "partitions", minimum=1, maximum=1000)
    size, extra = divmod(len(records), count)
    partitions, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        partitions.append(records[start:end])
        start = end
    sizes = [len(p) for p in partitions]
    _log(call, f"split {len(records)} records into {count} partitions of {sizes}")
    return {"partitions": partitions, "sizes": sizes, "count": len(records)}


def _numeric_stats(values: list[Any]) -> dict[str, Any]:
    numbers = [v for v in values if _is_number(v)]
    total: float = (
        sum(numbers) if all(isinstance(v, int) for v in numbers) else _tidy(math.fsum(numbers))
    )
    return {
        "count": len(numbers),
        "sum": total,
        "mean": _tidy(total / len(numbers)) if numbers else None,
        "min": min(numbers) if numbers else None,
        "max": max(numbers) if numbers else None,
        "negative": sum(1 for v in numbers if v < 0),
    }


def process_partition(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Statistics of one partition: missing values per field, and for each numeric field
    (every present value a number) its count, sum, mean, min, max and negatives. With
    ``group_by``, also each group's record count and numeric sums."""
    records = _records(parameters)
    partition = parameters.get("partition")
    group_by = _optional_string(parameters, "group_by")
    fields = _fields_of(records)
    missing = {}
    numeric = {}
    for field in fields:
        values = [r.get(field) for r in records]
        absent = sum(1 for v in values if _is_missing(v))
        if absent:
            missing[field] = absent
        present = [v for v in values if not _is_missing(v)]
        if present and all(_is_number(v) for v in present):
            numeric[field] = _numeric_stats(present)
    groups: dict[str, dict[str, Any]] = {}
    if group_by is not None:
        for record in records:
            value = record.get(group_by)
            key = "(missing)" if _is_missing(value) else str(value)
            group = groups.setdefault(key, {"count": 0, "sums": dict.fromkeys(numeric, 0)})
            group["count"] += 1
            for field in numeric:
                if _is_number(record.get(field)):
                    group["sums"][field] = _tidy(group["sums"][field] + record[field])
    _log(call, f"partition {partition}: {len(records)} records, numeric fields {list(numeric)}")
    return {
        "partition": partition,
        "count": len(records),
        "fields": fields,
        "missing": missing,
        "numeric": numeric,
        "groups": groups,
    }


def _stats(parameters: dict[str, Any], name: str) -> dict[str, Any]:
    value = parameters.get(name)
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("count"), int)
        or not isinstance(value.get("fields", []), list)
        or not isinstance(value.get("missing", {}), dict)
        or not isinstance(value.get("numeric", {}), dict)
    ):
        raise _bad(name, "must be the output of process_partition")
    return value


def quality_check(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Check a partition's statistics against ``rules``: ``required_fields`` (never
    missing), ``non_negative`` (numeric fields with no value below zero) and ``min_count``
    (default 1). Issues are output; with ``fail_on_issues`` true they fail the task."""
    stats = _stats(parameters, "stats")
    rules = parameters.get("rules") or {}
    if not isinstance(rules, dict):
        raise _bad("rules", f"must be an object, not {_type_name(rules)}")
    unknown = sorted(set(rules) - _QUALITY_RULES)
    if unknown:
        raise _bad("rules", f"has unknown rules {unknown} (known: {sorted(_QUALITY_RULES)})")
    required = _names(rules, "required_fields", [], label="rules.required_fields")
    non_negative = _names(rules, "non_negative", [], label="rules.non_negative")
    min_count = _integer(rules.get("min_count", 1), "rules.min_count", minimum=0, maximum=2**53)
    fail = parameters.get("fail_on_issues", False)
    if not isinstance(fail, bool):
        raise _bad("fail_on_issues", f"must be true or false, not {fail!r}")

    count: int = stats["count"]
    issues = []
    if count < min_count:
        issues.append(f"{count} records, fewer than {min_count}")
    for field in required:
        absent = stats["missing"].get(field, 0) if field in stats["fields"] else count
        if absent:
            issues.append(f"'{field}' missing in {absent} of {count} records")
    for field in non_negative:
        numbers = stats["numeric"].get(field)
        if numbers is None:
            if field in stats["fields"] and count - stats["missing"].get(field, 0) > 0:
                issues.append(f"'{field}' is not numeric")
        elif numbers.get("negative"):
            issues.append(f"'{field}' negative in {numbers['negative']} of {count} records")
    partition = stats.get("partition")
    _log(call, f"partition {partition}: {len(issues)} issues")
    for issue in issues:
        _log(call, f"  {issue}")
    if issues and fail:
        raise ActionFailed(
            f"quality check of partition {partition} failed: " + "; ".join(issues),
            kind="quality",
            retryable=False,
            details={"issues": issues},
        )
    return {"partition": partition, "count": count, "passed": not issues, "issues": issues}


def _merge_numeric(into: dict[str, Any], stats: dict[str, Any]) -> None:
    if into["count"] == 0:
        into.update({k: stats.get(k) for k in ("min", "max")})
    elif stats.get("count"):
        into["min"] = min(into["min"], stats["min"])
        into["max"] = max(into["max"], stats["max"])
    into["count"] += stats.get("count", 0)
    into["sum"] = _tidy(into["sum"] + stats.get("sum", 0))
    into["negative"] += stats.get("negative", 0)


def aggregate_results(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Combine partitions' statistics (and their quality checks) into totals; with
    ``output``, also write them as a JSON report to that workspace path."""
    results = parameters.get("results")
    if not isinstance(results, list) or not results:
        raise _bad("results", "must be a non-empty list of process_partition outputs")
    parts = [_stats({"results": r}, "results") for r in results]
    checks = parameters.get("checks") or []
    if not isinstance(checks, list) or not all(
        isinstance(c, dict) and isinstance(c.get("passed"), bool) for c in checks
    ):
        raise _bad("checks", "must be a list of quality_check outputs")
    output = _optional_string(parameters, "output")

    fields: dict[str, None] = {}
    missing: dict[str, int] = {}
    numeric: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for part in parts:
        fields.update(dict.fromkeys(part.get("fields", [])))
        for field, absent in part.get("missing", {}).items():
            missing[field] = missing.get(field, 0) + absent
        for field, stats in part.get("numeric", {}).items():
            into = numeric.setdefault(
                field, {"count": 0, "sum": 0, "mean": None, "min": None, "max": None, "negative": 0}
            )
            _merge_numeric(into, stats)
        for key, group in (part.get("groups") or {}).items():
            total = groups.setdefault(key, {"count": 0, "sums": {}})
            total["count"] += group.get("count", 0)
            for field, value in group.get("sums", {}).items():
                total["sums"][field] = _tidy(total["sums"].get(field, 0) + value)
    for stats in numeric.values():
        stats["mean"] = _tidy(stats["sum"] / stats["count"]) if stats["count"] else None
    failed = [c.get("partition") for c in checks if not c["passed"]]
    issues = [
        f"partition {c.get('partition')}: {issue}" for c in checks for issue in c.get("issues", [])
    ]
    summary: dict[str, Any] = {
        "partitions": len(parts),
        "count": sum(p["count"] for p in parts),
        "fields": list(fields),
        "missing": missing,
        "numeric": numeric,
        "groups": dict(sorted(groups.items())),
        "quality": {
            "checked": len(checks),
            "passed": len(checks) - len(failed),
            "failed_partitions": failed,
            "issues": issues,
        },
    }
    _log(call, f"aggregated {summary['count']} records from {len(parts)} partitions")
    summary["report"] = _write_file(call, output, _json_bytes(summary)) if output else None
    return summary


# --- agents: assessing data quality ---------------------------------------------------


def _row_problems(record: Record, required: list[str], non_negative: list[str]) -> list[str]:
    problems = [f"missing {f}" for f in required if _is_missing(record.get(f))]
    for field in non_negative:
        value = record.get(field)
        if _is_missing(value):
            continue
        if not _is_number(value):
            problems.append(f"{field} not a number")
        elif value < 0:
            problems.append(f"negative {field}")
    return problems


def _validation_rules(
    parameters: dict[str, Any], records: list[Record]
) -> tuple[list[str], list[str]]:
    return (
        _names(parameters, "required_fields", _fields_of(records)),
        _names(parameters, "non_negative", []),
    )


def assess_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Score data quality from 0 to 100: the share of records that are complete (every
    ``required_fields``, by default every field seen, present) and valid (each
    ``non_negative`` field, when present, a number ≥ 0)."""
    records = _records(parameters)
    required, non_negative = _validation_rules(parameters, records)
    reasons: dict[str, int] = {}
    valid = 0
    for record in records:
        problems = _row_problems(record, required, non_negative)
        if not problems:
            valid += 1
        for problem in problems:
            reasons[problem] = reasons.get(problem, 0) + 1
    total = len(records)
    score = round(100 * valid / total) if total else 0
    if not total:
        reasons["no records"] = 0
    _log(call, f"score {score}: {valid} of {total} records complete and valid")
    return {
        "score": score,
        "total": total,
        "valid": valid,
        "invalid": total - valid,
        "reasons": dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
    }


def quarantine_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Separate valid records from invalid ones (the rules of `assess_records`): the
    valid ones go to ``clean_output``, the others with their problems to
    ``rejects_output`` (both JSON files in the workspace)."""
    records = _records(parameters)
    required, non_negative = _validation_rules(parameters, records)
    clean_name = _string(parameters, "clean_output")
    rejects_name = _string(parameters, "rejects_output")
    clean: list[Record] = []
    rejects: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        problems = _row_problems(record, required, non_negative)
        if problems:
            rejects.append({"index": index, "record": record, "problems": problems})
        else:
            clean.append(record)
    clean_file = _write_file(call, clean_name, _json_bytes(clean))
    rejects_file = _write_file(call, rejects_name, _json_bytes(rejects))
    _log(call, f"kept {len(clean)} records, quarantined {len(rejects)}")
    return {
        "clean": {**clean_file, "count": len(clean)},
        "rejected": {**rejects_file, "count": len(rejects)},
    }


# --- agents: approval requests ----------------------------------------------------------


def build_request(parameters: dict[str, Any], call: TaskCall) -> Any:
    """An approval request record. Its id is derived from the instance and the request's
    content, so running the task again gives the same id."""
    title = _string(parameters, "title").strip()
    requester = _string(parameters, "requester").strip()
    amount = parameters.get("amount")
    if not _is_number(amount) or not math.isfinite(amount) or amount <= 0:
        raise _bad("amount", f"must be a number above zero, not {amount!r}")
    currency = _string(parameters, "currency", "USD").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise _bad("currency", f"must be a three-letter code such as USD, not {currency!r}")
    description = parameters.get("description") or ""
    if not isinstance(description, str):
        raise _bad("description", f"must be text, not {_type_name(description)}")
    key = "\x00".join([call.instance_id, title, repr(amount), currency, requester])
    request_id = "REQ-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:10].upper()
    _log(call, f"request {request_id}: {title!r}, {amount} {currency}, by {requester}")
    return {
        "request_id": request_id,
        "instance_id": call.instance_id,
        "title": title,
        "amount": amount,
        "currency": currency,
        "requester": requester,
        "description": description,
    }


def finalize_request(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Write the request and the approvals given to it to ``output`` (a JSON file); the
    status is ``approved`` when every approval's decision is ``approved``."""
    request = parameters.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("request_id"), str):
        raise _bad("request", "must be the output of build_request")
    approvals = parameters.get("approvals")
    if (
        not isinstance(approvals, list)
        or not approvals
        or not all(isinstance(a, dict) and isinstance(a.get("decision"), str) for a in approvals)
    ):
        raise _bad("approvals", "must be a non-empty list of approval_gate outputs")
    name = _string(parameters, "output")
    status = "approved" if all(a["decision"] == "approved" for a in approvals) else "rejected"
    approved_by = [a.get("by") for a in approvals if a["decision"] == "approved"]
    record = {"request": request, "approvals": approvals, "status": status}
    written = _write_file(call, name, _json_bytes(record))
    _log(call, f"request {request['request_id']} {status}")
    return {
        **written,
        "status": status,
        "request_id": request["request_id"],
        "approved_by": approved_by,
    }


# --- agents: generic ------------------------------------------------------------------


def write_summary(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Write ``summary`` (any JSON value) to the workspace JSON file ``output``."""
    name = _string(parameters, "output")
    if "summary" not in parameters:
        raise _bad("summary", "is required (the value to write)")
    return _write_file(call, name, _json_bytes(parameters["summary"]))


def echo(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Return the parameters unchanged (for tests and benchmarks)."""
    return dict(parameters)


BUILTIN_AGENTS: dict[str, Agent] = {
    "extract_records": extract_records,
    "transform_records": transform_records,
    "load_records": load_records,
    "split_records": split_records,
    "process_partition": process_partition,
    "quality_check": quality_check,
    "aggregate_results": aggregate_results,
    "assess_records": assess_records,
    "quarantine_records": quarantine_records,
    "build_request": build_request,
    "finalize_request": finalize_request,
    "write_summary": write_summary,
    "echo": echo,
}
