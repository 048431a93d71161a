"""Built-in agents on small real data, and the shipped templates that use them."""

from __future__ import annotations

import csv
import graphlib
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflow_cli.definition.expressions import evaluate_condition, references, render_value
from workflow_cli.definition.templates import PARAMETER_TYPES
from workflow_cli.engine.actions import BUILTIN_ACTIONS, get_action
from workflow_cli.engine.actions.base import ActionFailed, TaskCall
from workflow_cli.engine.agents.builtin import BUILTIN_AGENTS
from workflow_cli.store.workspace import Workspace

PACKAGE = Path(__file__).resolve().parent.parent / "workflow_cli"
TEMPLATES = sorted((PACKAGE / "templates").glob("*.json"))
SCHEMA = PACKAGE / "definition" / "schema" / "workflow-2.0.0.json"
SAMPLE = "package:sample_sales.csv"


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    return Workspace(root)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[io.TextIOWrapper]:
    with (tmp_path / "task.log").open("w+", encoding="utf-8") as handle:
        yield handle


def make_call(
    workspace: Workspace,
    log: Any,
    parameters: dict[str, Any],
    *,
    instance_id: str = "inst-1",
    task_id: str = "task",
    **extra: Any,
) -> TaskCall:
    return TaskCall(
        workspace=workspace,
        instance_id=instance_id,
        task_id=task_id,
        attempt=1,
        agent_id=None,
        parameters=parameters,
        timeout=None,
        log=log,
        log_path=Path(log.name),
        **extra,
    )


@pytest.fixture
def run(workspace: Workspace, log_file: Any) -> Any:
    """Call a built-in agent by name, the way agent_task does."""

    def call_agent(name: str, parameters: dict[str, Any], **extra: Any) -> Any:
        call = make_call(workspace, log_file, parameters, **extra)
        return BUILTIN_AGENTS[name](call.parameters, call)

    return call_agent


def write(workspace: Workspace, name: str, text: str) -> None:
    path = workspace.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def fails(run: Any, name: str, parameters: dict[str, Any], mentions: str) -> ActionFailed:
    """The agent refuses `parameters` for good (not retried), naming what is wrong."""
    with pytest.raises(ActionFailed) as caught:
        run(name, parameters)
    assert caught.value.retryable is False
    assert mentions in caught.value.message
    return caught.value


SALES: list[dict[str, Any]] = [
    {"order_id": "A1", "region": "north", "quantity": 2, "unit_price": 10.5},
    {"order_id": "A2", "region": " South ", "quantity": 0, "unit_price": 3.0},
    {"order_id": "A3", "region": None, "quantity": 4, "unit_price": 2.25},
    {"order_id": "A4", "region": "East", "quantity": -1, "unit_price": 7.0},
    {"order_id": "A5", "region": "east", "quantity": 3, "unit_price": None},
]


# --- extract_records ------------------------------------------------------------------


def test_extract_csv_converts_numbers_and_empty_cells(run: Any, workspace: Workspace) -> None:
    write(workspace, "in/sales.csv", "id,name,qty,price,code\n1,Desk,3,249.50,007\n2,,-4,.5,x1\n")
    out = run("extract_records", {"path": "in/sales.csv"})
    assert out["records"] == [
        {"id": 1, "name": "Desk", "qty": 3, "price": 249.5, "code": "007"},
        {"id": 2, "name": None, "qty": -4, "price": 0.5, "code": "x1"},
    ]
    assert (out["count"], out["fields"], out["source"], out["format"]) == (
        2,
        ["id", "name", "qty", "price", "code"],
        "in/sales.csv",
        "csv",
    )


def test_extract_json_array_and_json_lines(run: Any, workspace: Workspace) -> None:
    write(workspace, "a.json", json.dumps([{"x": 1}, {"x": 2.5, "y": "z"}]))
    write(workspace, "b.jsonl", '{"x": 1}\n\n{"x": 2}\n')
    assert run("extract_records", {"path": "a.json"})["records"] == [{"x": 1}, {"x": 2.5, "y": "z"}]
    out = run("extract_records", {"path": "b.jsonl"})
    assert (out["count"], out["format"], out["fields"]) == (2, "jsonl", ["x"])
    write(workspace, "c.data", "[]")
    assert run("extract_records", {"path": "c.data", "format": "json"})["count"] == 0


def test_extract_packaged_sample(run: Any) -> None:
    out = run("extract_records", {"path": SAMPLE})
    assert out["count"] == 50
    assert out["fields"] == ["order_id", "region", "product", "quantity", "unit_price", "date"]
    first = out["records"][0]
    assert isinstance(first["quantity"], int) and isinstance(first["unit_price"], float)
    assert any(r["quantity"] < 0 for r in out["records"])
    assert any(r["region"] is None for r in out["records"])


def test_extract_refuses_bad_input(run: Any, workspace: Workspace) -> None:
    fails(run, "extract_records", {}, "'path'")
    fails(run, "extract_records", {"path": "notes.txt"}, "'format'")
    fails(run, "extract_records", {"path": "a.csv", "format": "xml"}, "'format'")
    fails(run, "extract_records", {"path": "missing.csv"}, "no file")
    fails(run, "extract_records", {"path": "../outside.csv"}, "..")
    fails(run, "extract_records", {"path": "package:nothing.csv"}, "nothing.csv")
    write(workspace, "wide.csv", "a,b\n1,2,3\n")
    assert fails(run, "extract_records", {"path": "wide.csv"}, "line 2").kind == "data"
    write(workspace, "bad.json", "{not json")
    fails(run, "extract_records", {"path": "bad.json"}, "not valid JSON")
    write(workspace, "scalars.json", "[1, 2]")
    fails(run, "extract_records", {"path": "scalars.json"}, "record 0")


# --- transform_records ----------------------------------------------------------------


def test_transform_applies_operations_in_order(run: Any) -> None:
    out = run(
        "transform_records",
        {
            "records": SALES,
            "operations": [
                {"op": "require", "fields": ["region"]},
                {"op": "filter", "field": "quantity", "compare": ">", "value": 0},
                {"op": "case", "fields": ["region"], "to": "title"},
                {
                    "op": "compute",
                    "field": "total",
                    "operator": "multiply",
                    "operands": ["quantity", "unit_price"],
                    "round": 2,
                },
                {"op": "rename", "fields": {"unit_price": "price"}},
            ],
        },
    )
    assert out["records"] == [
        {"order_id": "A1", "region": "North", "quantity": 2, "price": 10.5, "total": 21.0},
        {"order_id": "A5", "region": "East", "quantity": 3, "price": None, "total": None},
    ]
    assert (out["count"], out["dropped"]) == (2, 3)
    assert out["drop_reasons"] == {"missing region": 1, "quantity not > 0": 2}
    assert SALES[0]["region"] == "north"  # the input is not changed in place


def test_transform_compute_is_arithmetic_over_fields_not_eval(run: Any) -> None:
    records = [{"a": 6, "b": 3}, {"a": 1, "b": 0}, {"a": "7", "b": 2}]
    out = run(
        "transform_records",
        {
            "records": records,
            "operations": [
                {"op": "compute", "field": "q", "operator": "divide", "operands": ["a", "b"]},
                {"op": "compute", "field": "s", "operator": "add", "operands": ["a", "b", 0.5]},
                {"op": "compute", "field": "m", "operator": "max", "operands": ["a", "b"]},
                {
                    "op": "compute",
                    "field": "x",
                    "operator": "add",
                    "operands": ["__import__('os')", 1],
                },
            ],
        },
    )
    assert [(r["q"], r["s"], r["m"], r["x"]) for r in out["records"]] == [
        (2.0, 9.5, 6, None),
        (None, 1.5, 1, None),
        (None, None, None, None),
    ]


def test_transform_filter_on_text_and_mismatched_types(run: Any) -> None:
    records = [{"r": "East"}, {"r": "West"}, {"r": 5}, {}]
    out = run(
        "transform_records",
        {
            "records": records,
            "operations": [
                {"op": "filter", "field": "r", "compare": "!=", "value": "West"},
                {"op": "filter", "field": "r", "compare": ">=", "value": "A"},
            ],
        },
    )
    assert out["records"] == [{"r": "East"}]
    assert out["drop_reasons"] == {"r not != 'West'": 1, "r not >= 'A'": 1, "missing r": 1}


@pytest.mark.parametrize(
    ("operations", "mentions"),
    [
        ("rename", "'operations'"),
        ([{"op": "explode"}], "'operations[0].op'"),
        ([{"fields": ["a"]}], "'operations[0]'"),
        ([{"op": "rename", "fields": {}}], "'operations[0].fields'"),
        ([{"op": "require", "fields": "a"}], "'operations[0].fields'"),
        ([{"op": "filter", "field": "a", "compare": "~", "value": 1}], "'operations[0].compare'"),
        ([{"op": "case", "fields": ["a"], "to": "camel"}], "'operations[0].to'"),
        (
            [{"op": "compute", "field": "t", "operator": "pow", "operands": ["a", "b"]}],
            "'operations[0].operator'",
        ),
        (
            [{"op": "compute", "field": "t", "operator": "add", "operands": ["a"]}],
            "'operations[0].operands'",
        ),
        (
            [{"op": "compute", "field": "t", "operator": "add", "operands": ["a", 1], "round": -1}],
            "'operations[0].round'",
        ),
    ],
)
def test_transform_refuses_bad_operations(run: Any, operations: Any, mentions: str) -> None:
    fails(run, "transform_records", {"records": SALES, "operations": operations}, mentions)


def test_transform_refuses_records_that_are_not_objects(run: Any) -> None:
    fails(run, "transform_records", {"records": [1], "operations": []}, "'records'")
    fails(run, "transform_records", {"records": "x", "operations": []}, "'records'")


# --- load_records ---------------------------------------------------------------------


def test_load_writes_json_atomically_with_checksum(run: Any, workspace: Workspace) -> None:
    out = run("load_records", {"records": SALES, "path": "output/x/sales.json"})
    written = workspace.root / "output/x/sales.json"
    data = written.read_bytes()
    assert out == {
        "path": "output/x/sales.json",
        "bytes": len(data),
        "format": "json",
        "count": 5,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert json.loads(data) == SALES
    assert [p.name for p in written.parent.iterdir()] == ["sales.json"]  # no temp file left


def test_load_csv_round_trips_through_extract(run: Any, workspace: Workspace) -> None:
    out = run("load_records", {"records": SALES, "path": "out.csv"})
    assert out["format"] == "csv"
    rows = list(csv.DictReader((workspace.root / "out.csv").open(encoding="utf-8")))
    assert rows[2] == {"order_id": "A3", "region": "", "quantity": "4", "unit_price": "2.25"}
    again = run("extract_records", {"path": "out.csv"})["records"]
    assert again[0] == SALES[0] and again[2]["region"] is None
    chosen = run("load_records", {"records": SALES, "path": "some.csv", "fields": ["order_id"]})
    assert (workspace.root / "some.csv").read_text().splitlines()[:2] == ["order_id", "A1"]
    assert chosen["count"] == 5


def test_load_stays_inside_the_workspace(run: Any, workspace: Workspace) -> None:
    fails(run, "load_records", {"records": [], "path": "../escape.json"}, "..")
    fails(run, "load_records", {"records": [], "path": "/tmp/escape.json"}, "absolute")
    (workspace.root / "folder.json").mkdir()
    fails(run, "load_records", {"records": [], "path": "folder.json"}, "folder")
    fails(run, "load_records", {"records": [], "path": "out.txt"}, "'format'")


# --- split, process, check, aggregate --------------------------------------------------


def test_split_keeps_order_and_balances_sizes(run: Any) -> None:
    records = [{"i": i} for i in range(10)]
    out = run("split_records", {"records": records, "partitions": 4})
    assert out["sizes"] == [3, 3, 2, 2] and out["count"] == 10
    assert [r for p in out["partitions"] for r in p] == records
    assert run("split_records", {"records": records[:2], "partitions": 3})["sizes"] == [1, 1, 0]


@pytest.mark.parametrize("partitions", [0, -1, "4", True, 2.0, None, 1001])
def test_split_refuses_bad_partition_counts(run: Any, partitions: Any) -> None:
    fails(run, "split_records", {"records": [], "partitions": partitions}, "'partitions'")


def test_process_partition_statistics(run: Any) -> None:
    out = run("process_partition", {"records": SALES, "partition": 2, "group_by": "region"})
    assert out["partition"] == 2 and out["count"] == 5
    assert out["missing"] == {"region": 1, "unit_price": 1}
    assert out["numeric"]["quantity"] == {
        "count": 5,
        "sum": 8,
        "mean": 1.6,
        "min": -1,
        "max": 4,
        "negative": 1,
    }
    assert out["numeric"]["unit_price"] == {
        "count": 4,
        "sum": 22.75,
        "mean": 5.6875,
        "min": 2.25,
        "max": 10.5,
        "negative": 0,
    }
    assert "order_id" not in out["numeric"] and "region" not in out["numeric"]
    assert out["groups"]["(missing)"] == {"count": 1, "sums": {"quantity": 4, "unit_price": 2.25}}
    assert out["groups"]["east"] == {"count": 1, "sums": {"quantity": 3, "unit_price": 0}}


def test_quality_check_reports_issues_as_output(run: Any) -> None:
    stats = run("process_partition", {"records": SALES, "partition": 1})
    rules = {
        "required_fields": ["order_id", "region", "sku"],
        "non_negative": ["quantity", "unit_price", "region"],
    }
    out = run("quality_check", {"stats": stats, "rules": rules})
    assert out == {
        "partition": 1,
        "count": 5,
        "passed": False,
        "issues": [
            "'region' missing in 1 of 5 records",
            "'sku' missing in 5 of 5 records",
            "'quantity' negative in 1 of 5 records",
            "'region' is not numeric",
        ],
    }
    good = run("process_partition", {"records": SALES[:1], "partition": 0})
    good_rules = {"required_fields": ["order_id"], "non_negative": ["quantity", "unit_price"]}
    assert run("quality_check", {"stats": good, "rules": good_rules}) == {
        "partition": 0,
        "count": 1,
        "passed": True,
        "issues": [],
    }
    empty = run("process_partition", {"records": [], "partition": 3})
    assert run("quality_check", {"stats": empty})["issues"] == ["0 records, fewer than 1"]


def test_quality_check_fails_the_task_when_asked(run: Any) -> None:
    stats = run("process_partition", {"records": SALES, "partition": 1})
    error = fails(
        run,
        "quality_check",
        {"stats": stats, "rules": {"non_negative": ["quantity"]}, "fail_on_issues": True},
        "partition 1",
    )
    assert error.kind == "quality" and error.details["issues"]
    fails(run, "quality_check", {"stats": stats, "rules": {"nonnegative": []}}, "'rules'")
    fails(run, "quality_check", {"stats": stats, "fail_on_issues": "yes"}, "'fail_on_issues'")
    fails(run, "quality_check", {"stats": [1]}, "'stats'")


def test_aggregate_equals_processing_everything_at_once(run: Any, workspace: Workspace) -> None:
    records = run("extract_records", {"path": SAMPLE})["records"]
    parts = run("split_records", {"records": records, "partitions": 4})["partitions"]
    results = [
        run("process_partition", {"records": p, "partition": i, "group_by": "region"})
        for i, p in enumerate(parts)
    ]
    checks = [
        run("quality_check", {"stats": s, "rules": {"required_fields": ["region"]}})
        for s in results
    ]
    out = run(
        "aggregate_results",
        {"results": results, "checks": checks, "output": "output/i/report.json"},
    )
    whole = run("process_partition", {"records": records, "group_by": "region"})
    assert out["count"] == whole["count"] == 50
    assert out["missing"] == whole["missing"]
    assert out["numeric"] == whole["numeric"]
    assert out["groups"] == dict(sorted(whole["groups"].items()))
    assert out["quality"] == {
        "checked": 4,
        "passed": 3,
        "failed_partitions": [1],
        "issues": ["partition 1: 'region' missing in 1 of 13 records"],
    }
    report = json.loads((workspace.root / "output/i/report.json").read_text())
    assert report["numeric"] == out["numeric"] and out["report"]["path"] == "output/i/report.json"


def test_aggregate_refuses_what_is_not_statistics(run: Any) -> None:
    fails(run, "aggregate_results", {"results": []}, "'results'")
    fails(run, "aggregate_results", {"results": [{"x": 1}]}, "'results'")
    stats = run("process_partition", {"records": SALES})
    fails(run, "aggregate_results", {"results": [stats], "checks": [{}]}, "'checks'")
    assert run("aggregate_results", {"results": [stats]})["report"] is None


# --- assess and quarantine ------------------------------------------------------------


def test_assess_scores_share_of_complete_valid_records(run: Any) -> None:
    out = run("assess_records", {"records": SALES, "non_negative": ["quantity"]})
    # A3 misses region, A4 has a negative quantity, A5 misses unit_price
    assert out == {
        "score": 40,
        "total": 5,
        "valid": 2,
        "invalid": 3,
        "reasons": {
            "missing region": 1,
            "missing unit_price": 1,
            "negative quantity": 1,
        },
    }
    text = run("assess_records", {"records": [{"n": "7"}, {"n": 7}], "non_negative": ["n"]})
    assert (text["score"], text["reasons"]) == (50, {"n not a number": 1})
    assert (
        run("assess_records", {"records": SALES, "required_fields": ["order_id"]})["score"] == 100
    )
    empty = run("assess_records", {"records": []})
    assert (empty["score"], empty["reasons"]) == (0, {"no records": 0})
    fails(
        run, "assess_records", {"records": SALES, "required_fields": "region"}, "'required_fields'"
    )


def test_assess_packaged_sample(run: Any) -> None:
    records = run("extract_records", {"path": SAMPLE})["records"]
    out = run("assess_records", {"records": records, "non_negative": ["quantity", "unit_price"]})
    assert (out["score"], out["valid"], out["invalid"]) == (92, 46, 4)
    assert out["reasons"] == {
        "missing product": 1,
        "missing region": 1,
        "missing unit_price": 1,
        "negative quantity": 1,
    }


def test_quarantine_separates_valid_from_invalid(run: Any, workspace: Workspace) -> None:
    out = run(
        "quarantine_records",
        {
            "records": SALES,
            "non_negative": ["quantity"],
            "clean_output": "q/clean.json",
            "rejects_output": "q/rejected.json",
        },
    )
    assert (out["clean"]["count"], out["rejected"]["count"]) == (2, 3)
    clean = json.loads((workspace.root / "q/clean.json").read_text())
    rejected = json.loads((workspace.root / "q/rejected.json").read_text())
    assert [r["order_id"] for r in clean] == ["A1", "A2"]
    assert [(r["index"], r["problems"]) for r in rejected] == [
        (2, ["missing region"]),
        (3, ["negative quantity"]),
        (4, ["missing unit_price"]),
    ]
    fails(
        run, "quarantine_records", {"records": SALES, "clean_output": "c.json"}, "'rejects_output'"
    )


# --- approval requests ----------------------------------------------------------------


def test_build_request_is_deterministic_per_instance(run: Any) -> None:
    params = {"title": " Laptops ", "amount": 4800, "requester": "alex", "currency": "eur"}
    first = run("build_request", params)
    assert first == run("build_request", params)  # a re-run gives the same request
    assert first["request_id"].startswith("REQ-") and len(first["request_id"]) == 14
    assert (first["title"], first["amount"], first["currency"], first["instance_id"]) == (
        "Laptops",
        4800,
        "EUR",
        "inst-1",
    )
    other = run("build_request", params, instance_id="inst-2")
    assert other["request_id"] != first["request_id"]


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"amount": 0}, "'amount'"),
        ({"amount": "4800"}, "'amount'"),
        ({"amount": True}, "'amount'"),
        ({"amount": float("inf")}, "'amount'"),
        ({"title": ""}, "'title'"),
        ({"requester": None}, "'requester'"),
        ({"currency": "EURO"}, "'currency'"),
        ({"description": 5}, "'description'"),
    ],
)
def test_build_request_refuses_bad_parameters(
    run: Any, change: dict[str, Any], mentions: str
) -> None:
    params = {"title": "Laptops", "amount": 10.5, "requester": "alex"} | change
    fails(run, "build_request", params, mentions)


def test_finalize_request_writes_the_decision(run: Any, workspace: Workspace) -> None:
    request = run("build_request", {"title": "Desk", "amount": 300, "requester": "kim"})
    approvals: list[dict[str, Any]] = [
        {"decision": "approved", "by": "team_lead", "comment": None, "time": "t1"},
        {"decision": "approved", "by": "director", "comment": "ok", "time": "t2"},
    ]
    out = run(
        "finalize_request",
        {"request": request, "approvals": approvals, "output": "o/approval.json"},
    )
    assert (out["status"], out["approved_by"], out["request_id"]) == (
        "approved",
        ["team_lead", "director"],
        request["request_id"],
    )
    saved = json.loads((workspace.root / "o/approval.json").read_text())
    assert saved == {"request": request, "approvals": approvals, "status": "approved"}
    approvals[1]["decision"] = "rejected"
    again = run(
        "finalize_request",
        {"request": request, "approvals": approvals, "output": "o/approval.json"},
    )
    assert again["status"] == "rejected" and again["approved_by"] == ["team_lead"]
    fails(
        run,
        "finalize_request",
        {"request": request, "approvals": [], "output": "o.json"},
        "'approvals'",
    )
    fails(
        run,
        "finalize_request",
        {"request": {}, "approvals": approvals, "output": "o.json"},
        "'request'",
    )


# --- generic agents -------------------------------------------------------------------


def test_write_summary_and_echo(run: Any, workspace: Workspace) -> None:
    out = run("write_summary", {"output": "s/summary.json", "summary": {"a": [1, 2]}})
    assert json.loads((workspace.root / "s/summary.json").read_text()) == {"a": [1, 2]}
    assert out["path"] == "s/summary.json"
    fails(run, "write_summary", {"output": "s.json"}, "'summary'")
    params = {"n": 1, "nested": {"x": [True, None]}}
    assert run("echo", params) == params


def test_agents_log_to_the_task_log_and_never_print(
    run: Any, log_file: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    records = run("extract_records", {"path": SAMPLE})["records"]
    run(
        "transform_records",
        {
            "records": records,
            "operations": [{"op": "filter", "field": "quantity", "compare": ">", "value": 0}],
        },
    )
    log_file.flush()
    text = Path(log_file.name).read_text(encoding="utf-8")
    assert "read 50 records from package:sample_sales.csv" in text
    assert "dropped 1: quantity not > 0" in text
    assert capsys.readouterr() == ("", "")


# --- templates ------------------------------------------------------------------------


def load_template(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def resolved_tasks(template: dict[str, Any]) -> dict[str, Any]:
    """The template's tasks with each dependency on a parallel_group resolved to its
    tasks (as the engine's model does)."""
    from workflow_cli.definition.graph import resolve_groups

    tasks = template["workflow"]["tasks"]
    resolved = resolve_groups(
        {tid: t.get("dependencies", []) for tid, t in tasks.items()},
        {tid: t.get("parallel_group") for tid, t in tasks.items()},
    )
    return {tid: {**t, "dependencies": list(resolved[tid])} for tid, t in tasks.items()}


def chosen_agent(task: dict[str, Any], params: dict[str, Any]) -> Any:
    """The agent a task runs: its agent_id, or the one a parameter chooses."""
    agent = task.get("agent_id")
    return render_value(agent, {"params": params}) if isinstance(agent, str) else agent


def template_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from template_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from template_strings(item)


def task_references(task: dict[str, Any]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for text in template_strings(task.get("parameters", {})):
        found |= references(text)
    conditions = task.get("conditions", [])
    for text in [conditions] if isinstance(conditions, str) else conditions:
        found |= references(text, bare=True)
    if task["action"] == "condition_check":
        found |= references(task["parameters"]["expression"], bare=True)
    return found


def upstream(tasks: dict[str, Any], task_id: str) -> set[str]:
    seen: set[str] = set()
    stack = list(tasks[task_id].get("dependencies", []))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(tasks[current].get("dependencies", []))
    return seen


def test_all_four_templates_ship() -> None:
    assert [p.stem for p in TEMPLATES] == [
        "approval_chain",
        "conditional_workflow",
        "parallel_processing",
        "sequential_pipeline",
    ]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_template_is_valid_and_uses_only_known_parts(path: Path) -> None:
    from jsonschema import Draft202012Validator

    template = load_template(path)
    assert set(template) == {"name", "description", "parameters", "workflow"}
    assert template["name"] == path.stem == template["workflow"]["id"]
    assert template["description"].count(". ") == 0 and template["description"].endswith(".")
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(template["workflow"])
    ]
    assert errors == []

    declared = template["parameters"]
    for name, spec in declared.items():
        assert spec["type"] in PARAMETER_TYPES, name
        assert spec["description"], name
        if "default" in spec:
            assert isinstance(spec["default"], PARAMETER_TYPES[spec["type"]]), name
            if spec["type"] in ("integer", "number"):
                assert not isinstance(spec["default"], bool), name
            assert spec["default"] in spec.get("enum", [spec["default"]]), name

    tasks = resolved_tasks(template)
    graphlib.TopologicalSorter(
        {tid: t.get("dependencies", []) for tid, t in tasks.items()}
    ).prepare()  # no cycles
    defaults = {name: spec.get("default") for name, spec in declared.items()}
    for task_id, task in tasks.items():
        assert task["name"], task_id
        assert task["action"] in BUILTIN_ACTIONS, task_id
        if task["action"] == "agent_task":  # with no set-up: a built-in agent
            assert chosen_agent(task, defaults) in BUILTIN_AGENTS, task_id
        assert set(task.get("dependencies", [])) <= set(tasks), task_id
        for root, key in task_references(task):
            if root == "params":
                assert key in declared, f"{task_id} uses params.{key}, which is not declared"
            elif root == "steps":
                assert key in upstream(tasks, task_id), f"{task_id} reads {key} before it ran"
            else:
                assert (root, key) == ("instance", "id"), task_id


# --- templates run by hand ------------------------------------------------------------


def run_template_by_hand(
    name: str,
    workspace: Workspace,
    log: Any,
    params: dict[str, Any] | None = None,
    decisions: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run a template's tasks in dependency order through the real actions and agents:
    parameters rendered with the template's expressions, conditions evaluated, a task whose
    dependencies were all skipped skipped. Approval gates get the `decisions` given."""
    template = load_template(PACKAGE / "templates" / f"{name}.json")
    values = {k: spec["default"] for k, spec in template["parameters"].items()} | (params or {})
    tasks = resolved_tasks(template)
    order = graphlib.TopologicalSorter({t: v.get("dependencies", []) for t, v in tasks.items()})
    steps: dict[str, dict[str, Any]] = {}
    instance_id = f"{name}-test"
    for task_id in order.static_order():
        task = tasks[task_id]
        context = {"params": values, "steps": steps, "instance": {"id": instance_id}}
        deps = task.get("dependencies", [])
        conditions = task.get("conditions", [])
        conditions = [conditions] if isinstance(conditions, str) else conditions
        if (deps and all(steps[d]["state"] == "skipped" for d in deps)) or not all(
            evaluate_condition(c, context) for c in conditions
        ):
            steps[task_id] = {"state": "skipped", "output": None}
            continue
        call = make_call(
            workspace,
            log,
            render_value(task.get("parameters", {}), context),
            instance_id=instance_id,
            task_id=task_id,
            context=context,
            decisions=[decisions[task_id]] if decisions and task_id in decisions else [],
        )
        call.agent_id = chosen_agent(task, values)
        output = get_action(task["action"]).run(call)
        steps[task_id] = {"state": "completed", "output": output}
    return steps


def test_sequential_pipeline_by_hand(workspace: Workspace, log_file: Any) -> None:
    steps = run_template_by_hand("sequential_pipeline", workspace, log_file)
    assert steps["extract"]["output"]["count"] == 50
    transform = steps["transform"]["output"]
    assert (transform["count"], transform["dropped"]) == (46, 4)
    assert transform["drop_reasons"] == {
        "missing region": 1,
        "missing product": 1,
        "missing unit_price": 1,
        "quantity not >= 1": 1,
    }
    load = steps["load"]["output"]
    path = workspace.root / "output/sequential_pipeline-test/clean_sales.csv"
    assert load["path"] == "output/sequential_pipeline-test/clean_sales.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == load["sha256"]
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(rows) == load["count"] == 46
    assert set(rows[0]) == {
        "order_id",
        "region",
        "product",
        "quantity",
        "unit_price",
        "date",
        "total",
    }
    assert {r["region"] for r in rows} == {"North", "South", "East", "West"}
    for row in rows:
        assert int(row["quantity"]) >= 1
        assert float(row["total"]) == round(int(row["quantity"]) * float(row["unit_price"]), 2)

    again = run_template_by_hand(
        "sequential_pipeline", workspace, log_file, {"output_format": "json", "min_quantity": 10}
    )
    saved = json.loads((workspace.root / again["load"]["output"]["path"]).read_text())
    assert saved and all(r["quantity"] >= 10 for r in saved)


def test_parallel_processing_by_hand(workspace: Workspace, log_file: Any) -> None:
    steps = run_template_by_hand("parallel_processing", workspace, log_file)
    assert steps["split"]["output"]["sizes"] == [13, 13, 12, 12]
    assert [steps[f"check_{i}"]["output"]["passed"] for i in range(4)] == [
        True,
        False,
        True,
        False,
    ]
    report = steps["aggregate"]["output"]
    assert report["count"] == 50 and report["quality"]["failed_partitions"] == [1, 3]
    assert set(report["groups"]) == {"North", "South", "East", "West", "(missing)"}
    assert report["numeric"]["quantity"]["negative"] == 1
    saved = workspace.root / "output/parallel_processing-test/sales_report.json"
    assert json.loads(saved.read_text())["numeric"] == report["numeric"]

    with pytest.raises(ActionFailed, match="partition 1"):
        run_template_by_hand("parallel_processing", workspace, log_file, {"fail_on_issues": True})


def test_conditional_workflow_by_hand_takes_each_branch(
    workspace: Workspace, log_file: Any
) -> None:
    steps = run_template_by_hand("conditional_workflow", workspace, log_file)
    assert steps["assess"]["output"]["score"] == 92 and steps["route"]["output"] is True
    assert steps["remediation_path"]["state"] == "skipped"
    base = workspace.root / "output/conditional_workflow-test"
    assert len(json.loads((base / "accepted.json").read_text())) == 50
    summary = json.loads((base / "summary.json").read_text())
    assert (summary["score"], summary["threshold"], summary["path_taken"]) == (
        92,
        90,
        "high_quality_path",
    )
    assert summary["result"]["path"].endswith("accepted.json")

    steps = run_template_by_hand("conditional_workflow", workspace, log_file, {"threshold": 95})
    assert steps["high_quality_path"]["state"] == "skipped"
    assert steps["join"]["state"] == "completed"
    assert len(json.loads((base / "rejected.json").read_text())) == 4
    assert len(json.loads((base / "clean.json").read_text())) == 46
    summary = json.loads((base / "summary.json").read_text())
    assert summary["path_taken"] == "remediation_path"
    assert summary["result"]["rejected"]["count"] == 4


def test_approval_chain_by_hand(workspace: Workspace, log_file: Any) -> None:
    from workflow_cli.engine.actions.base import AwaitDecision

    with pytest.raises(AwaitDecision) as waiting:
        run_template_by_hand("approval_chain", workspace, log_file)
    assert waiting.value.waiting_for["approvers"] == ["team_lead"]
    assert "Laptops for the support team" in waiting.value.waiting_for["message"]

    decisions = {
        "level1_approval": {"decision": "approved", "by": "team_lead", "time": "t1"},
        "level2_approval": {
            "decision": "approved",
            "by": "director",
            "comment": "fine",
            "time": "t2",
        },
    }
    steps = run_template_by_hand(
        "approval_chain", workspace, log_file, {"amount": 1250.5}, decisions
    )
    final = steps["finalize"]["output"]
    assert (final["status"], final["approved_by"]) == ("approved", ["team_lead", "director"])
    saved = json.loads((workspace.root / "output/approval_chain-test/approval.json").read_text())
    assert saved["request"]["amount"] == 1250.5
    assert [a["by"] for a in saved["approvals"]] == ["team_lead", "director"]
