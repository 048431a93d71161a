"""Partitioned processing: records cut into partitions, statistics of each partition,
and the partitions' statistics (and their quality checks) combined."""

from __future__ import annotations

import math
from typing import Any

from workflow_cli.engine.actions.base import TaskCall
from workflow_cli.engine.agents.builtin.parameters import (
    bad,
    integer,
    is_missing,
    is_number,
    log,
    optional_string,
    records_of,
    tidy,
)
from workflow_cli.engine.agents.builtin.records import fields_of, json_bytes, write_file


def split_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Cut records into N contiguous partitions whose sizes differ by at most one."""
    records = records_of(parameters)
    count = integer(parameters.get("partitions"), "partitions", minimum=1, maximum=1000)
    size, extra = divmod(len(records), count)
    partitions, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        partitions.append(records[start:end])
        start = end
    sizes = [len(p) for p in partitions]
    log(call, f"split {len(records)} records into {count} partitions of {sizes}")
    return {"partitions": partitions, "sizes": sizes, "count": len(records)}


def _numeric_stats(values: list[Any]) -> dict[str, Any]:
    numbers = [v for v in values if is_number(v)]
    total: float = (
        sum(numbers) if all(isinstance(v, int) for v in numbers) else tidy(math.fsum(numbers))
    )
    return {
        "count": len(numbers),
        "sum": total,
        "mean": tidy(total / len(numbers)) if numbers else None,
        "min": min(numbers) if numbers else None,
        "max": max(numbers) if numbers else None,
        "negative": sum(1 for v in numbers if v < 0),
    }


def process_partition(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Statistics of one partition: missing values per field, and for each numeric field
    (every present value a number) its count, sum, mean, min, max and negatives. With
    ``group_by``, also each group's record count and numeric sums."""
    records = records_of(parameters)
    partition = parameters.get("partition")
    group_by = optional_string(parameters, "group_by")
    fields = fields_of(records)
    missing = {}
    numeric = {}
    for field in fields:
        values = [r.get(field) for r in records]
        absent = sum(1 for v in values if is_missing(v))
        if absent:
            missing[field] = absent
        present = [v for v in values if not is_missing(v)]
        if present and all(is_number(v) for v in present):
            numeric[field] = _numeric_stats(present)
    groups: dict[str, dict[str, Any]] = {}
    if group_by is not None:
        for record in records:
            value = record.get(group_by)
            key = "(missing)" if is_missing(value) else str(value)
            group = groups.setdefault(key, {"count": 0, "sums": dict.fromkeys(numeric, 0)})
            group["count"] += 1
            for field in numeric:
                if is_number(record.get(field)):
                    group["sums"][field] = tidy(group["sums"][field] + record[field])
    log(call, f"partition {partition}: {len(records)} records, numeric fields {list(numeric)}")
    return {
        "partition": partition,
        "count": len(records),
        "fields": fields,
        "missing": missing,
        "numeric": numeric,
        "groups": groups,
    }


def partition_stats(value: Any, name: str) -> dict[str, Any]:
    """`value`, parameter `name`, checked to be an output of `process_partition`."""
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("count"), int)
        or not isinstance(value.get("fields", []), list)
        or not isinstance(value.get("missing", {}), dict)
        or not isinstance(value.get("numeric", {}), dict)
    ):
        raise bad(name, "must be the output of process_partition")
    return value


def _merge_numeric(into: dict[str, Any], stats: dict[str, Any]) -> None:
    if into["count"] == 0:
        into.update({k: stats.get(k) for k in ("min", "max")})
    elif stats.get("count"):
        into["min"] = min(into["min"], stats["min"])
        into["max"] = max(into["max"], stats["max"])
    into["count"] += stats.get("count", 0)
    into["sum"] = tidy(into["sum"] + stats.get("sum", 0))
    into["negative"] += stats.get("negative", 0)


def aggregate_results(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Combine partitions' statistics (and their quality checks) into totals; with
    ``output``, also write them as a JSON report to that workspace path."""
    results = parameters.get("results")
    if not isinstance(results, list) or not results:
        raise bad("results", "must be a non-empty list of process_partition outputs")
    parts = [partition_stats(r, "results") for r in results]
    checks = parameters.get("checks") or []
    if not isinstance(checks, list) or not all(
        isinstance(c, dict) and isinstance(c.get("passed"), bool) for c in checks
    ):
        raise bad("checks", "must be a list of quality_check outputs")
    output = optional_string(parameters, "output")

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
                total["sums"][field] = tidy(total["sums"].get(field, 0) + value)
    for stats in numeric.values():
        stats["mean"] = tidy(stats["sum"] / stats["count"]) if stats["count"] else None
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
    log(call, f"aggregated {summary['count']} records from {len(parts)} partitions")
    summary["report"] = write_file(call, output, json_bytes(summary)) if output else None
    return summary
