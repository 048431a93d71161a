"""Extract, transform, load: records from a file, changed by declarative operations,
written to a file."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from workflow_cli.engine.actions.base import TaskCall
from workflow_cli.engine.agents.builtin.parameters import (
    Record,
    bad,
    integer,
    is_missing,
    is_number,
    log,
    names,
    records_of,
    string,
    type_name,
)
from workflow_cli.engine.agents.builtin.records import (
    encode_records,
    fields_of,
    format_of,
    read_records,
    write_file,
)

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


def extract_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Read records from a CSV, JSON array or JSON-lines file.

    CSV cells that look like integers or decimals become numbers, empty cells null.
    """
    source = string(parameters, "path")
    fmt = format_of(source, parameters.get("format"), "format")
    records = read_records(call, source, fmt)
    log(call, f"read {len(records)} records from {source} ({fmt})")
    return {
        "records": records,
        "count": len(records),
        "fields": fields_of(records),
        "source": source,
        "format": fmt,
    }


RowStep = Callable[[Record], Record | str]
"""One transform step: the changed record, or a reason (text) to drop it."""


def _compile_operation(op: Any, where: str) -> RowStep:
    if not isinstance(op, dict) or not isinstance(op.get("op"), str):
        raise bad(where, "must be an object with 'op' (rename, require, filter, case, compute)")
    kind = op["op"]
    if kind == "rename":
        mapping = op.get("fields")
        if (
            not isinstance(mapping, dict)
            or not mapping
            or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items())
        ):
            raise bad(f"{where}.fields", "must map old field names to new ones")
        return lambda r: {mapping.get(k, k): v for k, v in r.items()}
    if kind == "require":
        fields = names(op, "fields", [], label=f"{where}.fields")
        if not fields:
            raise bad(f"{where}.fields", "must list the fields a record needs")

        def require(record: Record) -> Record | str:
            for field in fields:
                if is_missing(record.get(field)):
                    return f"missing {field}"
            return record

        return require
    if kind == "filter":
        field, compare, value = op.get("field"), op.get("compare"), op.get("value")
        if not isinstance(field, str) or not field:
            raise bad(f"{where}.field", "must name a field")
        if compare not in _COMPARE:
            raise bad(f"{where}.compare", f"must be one of {', '.join(_COMPARE)}")
        test = _COMPARE[compare]

        def keep(record: Record) -> Record | str:
            reason = f"{field} not {compare} {value!r}"
            actual = record.get(field)
            if is_missing(actual):
                return f"missing {field}"
            try:
                return record if test(actual, value) else reason
            except TypeError:  # e.g. text compared with a number
                return reason

        return keep
    if kind == "case":
        fields = names(op, "fields", [], label=f"{where}.fields")
        to = op.get("to")
        if not fields:
            raise bad(f"{where}.fields", "must list the text fields to change")
        if to not in _CASES:
            raise bad(f"{where}.to", f"must be one of {', '.join(_CASES)}")
        change = _CASES[to]

        def recase(record: Record) -> Record:
            return {
                k: change(v.strip()) if k in fields and isinstance(v, str) else v
                for k, v in record.items()
            }

        return recase
    if kind == "compute":
        return _compile_compute(op, where)
    raise bad(f"{where}.op", f"'{kind}' is not one of rename, require, filter, case, compute")


def _compile_compute(op: dict[str, Any], where: str) -> RowStep:
    target, name, operands = op.get("field"), op.get("operator"), op.get("operands")
    digits = op.get("round")
    if not isinstance(target, str) or not target:
        raise bad(f"{where}.field", "must name the field to compute")
    if name not in _ARITHMETIC:
        raise bad(f"{where}.operator", f"must be one of {', '.join(_ARITHMETIC)}")
    if (
        not isinstance(operands, list)
        or len(operands) < 2
        or not all((isinstance(o, str) and o) or is_number(o) for o in operands)
    ):
        raise bad(f"{where}.operands", "must list two or more field names or numbers")
    if digits is not None:
        integer(digits, f"{where}.round", minimum=0, maximum=12)
    combine = _ARITHMETIC[name]

    def compute(record: Record) -> Record:
        # Like SQL: a missing or non-numeric operand, or a division by zero, gives null.
        values = [record.get(o) if isinstance(o, str) else o for o in operands]
        numbers = [v for v in values if is_number(v)]
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
    records = records_of(parameters)
    operations = parameters.get("operations")
    if not isinstance(operations, list):
        raise bad("operations", f"must be a list of operations, not {type_name(operations)}")
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
    log(call, f"{len(steps)} operations: kept {len(kept)} of {len(records)} records")
    for reason, count in reasons.items():
        log(call, f"  dropped {count}: {reason}")
    return {"records": kept, "count": len(kept), "dropped": dropped, "drop_reasons": reasons}


def load_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Write records to a workspace file as JSON (an array), JSON lines or CSV, atomically."""
    records = records_of(parameters)
    name = string(parameters, "path")
    fmt = format_of(name, parameters.get("format"), "format")
    fields = names(parameters, "fields", []) or None
    written = write_file(call, name, encode_records(records, fmt, fields))
    return {**written, "format": fmt, "count": len(records)}
