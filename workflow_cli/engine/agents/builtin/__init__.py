"""Built-in agents: small data steps that do real work, used by the shipped templates.

An agent is ``agent(parameters, call) -> output``: ``parameters`` are the task's rendered
parameters, the output is any JSON value. Bad parameters raise a non-retryable
`ActionFailed` naming the parameter; what a person may want to read goes to ``call.log``.
Inputs are read through `resolve_input` (workspace-relative, or ``package:FILE`` for the
samples in ``workflow_cli/data``); outputs are written atomically inside the workspace.

One module per domain: `etl` (extract, transform, load), `partitions` (split, process,
aggregate), `quality` (checks, assessment, quarantine), `approvals` (approval requests)
and `generic`; `parameters` and `records` hold what they share.

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

from workflow_cli.engine.agents.builtin.approvals import build_request, finalize_request
from workflow_cli.engine.agents.builtin.etl import extract_records, load_records, transform_records
from workflow_cli.engine.agents.builtin.generic import echo, write_summary
from workflow_cli.engine.agents.builtin.parameters import Agent
from workflow_cli.engine.agents.builtin.partitions import (
    aggregate_results,
    process_partition,
    split_records,
)
from workflow_cli.engine.agents.builtin.quality import (
    assess_records,
    quality_check,
    quarantine_records,
)

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

__all__ = ["BUILTIN_AGENTS", "Agent"]
