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

from collections.abc import Iterator, Mapping
from importlib import import_module

from workflow_cli.engine.agents.builtin.parameters import Agent

# Each built-in agent -> the module of this package that defines it (under its name).
_MODULES = {
    "extract_records": "etl",
    "transform_records": "etl",
    "load_records": "etl",
    "split_records": "partitions",
    "process_partition": "partitions",
    "quality_check": "quality",
    "aggregate_results": "partitions",
    "assess_records": "quality",
    "quarantine_records": "quality",
    "build_request": "approvals",
    "finalize_request": "approvals",
    "write_summary": "generic",
    "echo": "generic",
}


class _BuiltinAgents(Mapping[str, Agent]):
    """The built-in agents by name; an agent's module is imported when it is first asked
    for (a run of ``echo`` does without the CSV readers and the statistics)."""

    def __init__(self) -> None:
        self._found: dict[str, Agent] = {}

    def __getitem__(self, name: str) -> Agent:
        agent = self._found.get(name)
        if agent is None:
            agent = self._found[name] = getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
        return agent

    def __contains__(self, name: object) -> bool:
        return name in _MODULES

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


BUILTIN_AGENTS: Mapping[str, Agent] = _BuiltinAgents()

__all__ = ["BUILTIN_AGENTS", "Agent"]
