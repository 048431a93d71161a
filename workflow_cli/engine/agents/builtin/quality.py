"""Data quality: a partition's statistics checked against rules, records scored from 0
to 100, and invalid records set apart."""

from __future__ import annotations

from typing import Any

from workflow_cli.engine.actions.base import ActionFailed, TaskCall
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
from workflow_cli.engine.agents.builtin.partitions import partition_stats
from workflow_cli.engine.agents.builtin.records import fields_of, json_bytes, write_file

_QUALITY_RULES = frozenset({"required_fields", "non_negative", "min_count"})


def quality_check(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Check a partition's statistics against ``rules``: ``required_fields`` (never
    missing), ``non_negative`` (numeric fields with no value below zero) and ``min_count``
    (default 1). Issues are output; with ``fail_on_issues`` true they fail the task."""
    stats = partition_stats(parameters.get("stats"), "stats")
    rules = parameters.get("rules") or {}
    if not isinstance(rules, dict):
        raise bad("rules", f"must be an object, not {type_name(rules)}")
    unknown = sorted(set(rules) - _QUALITY_RULES)
    if unknown:
        raise bad("rules", f"has unknown rules {unknown} (known: {sorted(_QUALITY_RULES)})")
    required = names(rules, "required_fields", [], label="rules.required_fields")
    non_negative = names(rules, "non_negative", [], label="rules.non_negative")
    min_count = integer(rules.get("min_count", 1), "rules.min_count", minimum=0, maximum=2**53)
    fail = parameters.get("fail_on_issues", False)
    if not isinstance(fail, bool):
        raise bad("fail_on_issues", f"must be true or false, not {fail!r}")

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
    log(call, f"partition {partition}: {len(issues)} issues")
    for issue in issues:
        log(call, f"  {issue}")
    if issues and fail:
        raise ActionFailed(
            f"quality check of partition {partition} failed: " + "; ".join(issues),
            kind="quality",
            retryable=False,
            details={"issues": issues},
        )
    return {"partition": partition, "count": count, "passed": not issues, "issues": issues}


def _row_problems(record: Record, required: list[str], non_negative: list[str]) -> list[str]:
    problems = [f"missing {f}" for f in required if is_missing(record.get(f))]
    for field in non_negative:
        value = record.get(field)
        if is_missing(value):
            continue
        if not is_number(value):
            problems.append(f"{field} not a number")
        elif value < 0:
            problems.append(f"negative {field}")
    return problems


def _validation_rules(
    parameters: dict[str, Any], records: list[Record]
) -> tuple[list[str], list[str]]:
    return (
        names(parameters, "required_fields", fields_of(records)),
        names(parameters, "non_negative", []),
    )


def assess_records(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Score data quality from 0 to 100: the share of records that are complete (every
    ``required_fields``, by default every field seen, present) and valid (each
    ``non_negative`` field, when present, a number ≥ 0)."""
    records = records_of(parameters)
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
    log(call, f"score {score}: {valid} of {total} records complete and valid")
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
    records = records_of(parameters)
    required, non_negative = _validation_rules(parameters, records)
    clean_name = string(parameters, "clean_output")
    rejects_name = string(parameters, "rejects_output")
    clean: list[Record] = []
    rejects: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        problems = _row_problems(record, required, non_negative)
        if problems:
            rejects.append({"index": index, "record": record, "problems": problems})
        else:
            clean.append(record)
    clean_file = write_file(call, clean_name, json_bytes(clean))
    rejects_file = write_file(call, rejects_name, json_bytes(rejects))
    log(call, f"kept {len(clean)} records, quarantined {len(rejects)}")
    return {
        "clean": {**clean_file, "count": len(clean)},
        "rejected": {**rejects_file, "count": len(rejects)},
    }
