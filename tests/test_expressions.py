"""Expressions: everyday ones keep their values; hostile ones end at once (or at the
time limit) with an ExpressionError that names the limit, never a hang, a MemoryError
or a Python object leaking out. The hostile table runs through real processes with a
timeout: ``validate`` refuses what it can see, ``run`` fails the task for the rest."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.definition.expressions import (
    check_condition,
    check_template,
    evaluate_condition,
    evaluate_expression,
    render_value,
)
from workflow_cli.definition.sandbox import ExpressionLimits
from workflow_cli.errors import ExpressionError

CONTEXT: dict[str, Any] = {
    "params": {"n": 3, "items": [1, 2, 3], "name": "ann", "flags": {"on": True}},
    "steps": {"fetch": {"output": {"rows": [{"v": 2}, {"v": 5}]}, "state": "completed"}},
    "instance": {"id": "wf-1"},
}
NORMAL = [
    ("{{ params.n }}", 3),
    ("{{ params.items }}", [1, 2, 3]),  # a mapping's key first: the parameter, not dict.items
    ("n={{ params.n }}", "n=3"),
    ("{{ params.n * 2 + 1 }}", 7),
    ("{{ params.n / 2 }}", 1.5),
    ("{{ 2 ** 10 }}", 1024),
    ("{{ steps.fetch.output.rows | map(attribute='v') | sum }}", 7),
    ("{{ steps.fetch.output.rows | map(attribute='v') | list }}", [2, 5]),
    ("{% for x in params.items %}{{ loop.index }}:{{ x }} {% endfor %}", "1:1 2:2 3:3 "),
    ("{{ params.name ~ '-' ~ params.n }}", "ann-3"),
    ("{{ '%s has %d' % (params.name, params.n) }}", "ann has 3"),
    ("{{ '%(a)s/%(b)05.1f' % {'a': 1, 'b': 2.25} }}", "1/002.2"),
    ("{{ '{}:{:>4}'.format(params.name, params.n) }}", "ann:   3"),
    ("{{ '%-4s|' | format(params.name) }}", "ann |"),
    ("{{ params.items | join(', ') }}", "1, 2, 3"),
    ("{{ params.name | upper | center(7) }}", "  ANN  "),
    ("{{ params.name.upper() }}", "ANN"),
    ("{{ 'a b  c'.split() }}", ["a", "b", "c"]),
    ("{{ 'x-y'.replace('-', '+') }}", "x+y"),
    ("{{ range(3) | list }}", [0, 1, 2]),
    ("{{ dict(a=1, b=[2]) }}", {"a": 1, "b": [2]}),
    ("{{ (1, 'two') }}", [1, "two"]),
    ("{{ params.flags | tojson }}", '{"on": true}'),
    ("{{ params.items | batch(2) | list }}", [[1, 2], [3]]),
    ("{{ params.items | select('odd') | list }}", [1, 3]),
    ("{{ 3.14159 | round(2) }}", 3.14),
    ("{{ 'ab' * 3 }}", "ababab"),
    ("{{ [0] * 3 + [1] }}", [0, 0, 0, 1]),
    ("{{ instance.id }}", "wf-1"),
    ("{% macro f(n) %}{{ n }}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", "3210"),
    ("{% set total = params.items | sum %}{{ total * 2 }}", "12"),
    ("{{ 'x' if params.flags.on else 'y' }}", "x"),
    ("{{ params.items | length > 2 }}", True),
    ("{{ none }}", None),
    ("{{ '{{ 7*7 }}' }}", "{{ 7*7 }}"),  # a result is never rendered again
]


@pytest.mark.parametrize(("text", "expected"), NORMAL, ids=[t for t, _ in NORMAL])
def test_everyday_expressions_keep_their_values(text: str, expected: Any) -> None:
    value = render_value(text, CONTEXT)
    assert value == expected
    assert type(value) is type(expected)
    check_template(text)


def test_a_whole_structure_is_rendered_within_one_budget() -> None:
    rendered = render_value(
        {"a": "{{ params.n }}", "b": ["{{ params.name }}!", 4], "c": {"d": "plain"}}, CONTEXT
    )
    assert rendered == {"a": 3, "b": ["ann!", 4], "c": {"d": "plain"}}
    tight = ExpressionLimits(max_value_chars=8)
    with pytest.raises(ExpressionError, match="rendered values come to more than 8"):
        render_value({"a": "{{ 'x' * 5 }}", "b": "{{ 'y' * 5 }}"}, CONTEXT, tight)


def test_conditions_and_bare_expressions() -> None:
    assert evaluate_condition("params.n > 2 and steps.fetch.state == 'completed'", CONTEXT)
    assert evaluate_expression("params.items | map('string') | join('-')", CONTEXT) == "1-2-3"
    with pytest.raises(ExpressionError, match="has no attribute 'ghost'"):
        evaluate_condition("steps.ghost.output", CONTEXT)
    with pytest.raises(ExpressionError, match="has no attribute 'missing'"):
        render_value("{{ params.missing }}", CONTEXT)  # StrictUndefined


# What each hostile expression is stopped by: a fragment of its message.
HOSTILE: list[tuple[str, str]] = [
    ("{{ 'a' * 10**9 }}", "'*' would be 1,000,000,000 characters"),
    ("{{ [1] * 10**9 }}", "'*' would have 1,000,000,000 items"),
    ("{{ ('ab',) * 10**8 }}", "'*' would have"),
    ("{{ range(10**9) | list }}", "range() would have 1,000,000,000 items"),
    ("{{ range(10**100) }}", "range() would have"),
    ("{{ 'a' * 999999 + 'b' * 999999 }}", "'+' would be 1,999,998 characters"),
    ("{{ ('a' * 999999) ~ ('b' * 999999) }}", "'~' would be"),
    ("{{ 10 ** 100000 }}", "'**' would make a number"),
    ("{{ (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) }}", "'*'"),
    ("{{ '{:>999999999}'.format(1) }}", "width or precision over the limit"),
    ("{{ '{:.999999999f}'.format(1.5) }}", "width or precision over the limit"),
    ("{{ '{0:{1}}'.format(1, 10**9) }}", "width or precision over the limit"),
    ("{{ '%999999999s' % 'a' }}", "width or precision over the limit"),
    ("{{ '%*d' % (10**9, 1) }}", "'*' widths are not supported"),
    ("{{ '%999999999d' | format(1) }}", "width or precision over the limit"),
    ("{{ ('%s' * 1000) % (('x' * 100000,) * 1000) }}", "the formatted text would be"),
    ("{{ ('{}' * 100000).format(*(['x' * 999999] * 100000)) }}", "characters of text in all"),
    ("{{ 'x' | center(10**9) }}", "'center' width 1,000,000,000"),
    ("{{ 'x'.ljust(10**9) }}", "'ljust' width"),
    ("{{ 'x'.zfill(10**9) }}", "'zfill' width"),
    ("{{ ('\t' * 1000).expandtabs(10**6) }}", "'expandtabs' text would be"),
    ("{{ ('a' * 100000) | replace('', 'b' * 100000) }}", "the text 'replace' makes"),
    ("{{ ('a' * 100000).replace('a', 'b' * 100) }}", "the text 'replace' makes"),
    ("{{ range(100000) | join('a' * 100000) }}", "the joined text would be"),
    ("{{ ('a' * 100000).join(['b'] * 100000) }}", "the joined text would be"),
    ("{{ ('\n' * 100000) | indent(10**5) }}", "the indented text would be"),
    ("{{ ('ab ' * 300000) | wordwrap(1) }}", "'wordwrap' takes text of at most"),
    ("{{ ('ab ' * 30000) | wordwrap(1, wrapstring='x' * 1000) }}", "the wrapped text would be"),
    ("{{ [1] | batch(10**9, 0) | list }}", "a batch would have"),
    ("{{ [1] | slice(10**9) | list }}", "the slices would have"),
    ("{{ 5 | round(-10**9) }}", "'round' precision"),
    ("{{ (['x'] * 100000) | tojson(indent=10**9) }}", "'tojson' indent"),
    ("{{ ([[1] * 100000] * 100000) | sum(start=[]) }}", "'+' would have 200,000 items"),
    ("{{ ('a' * 1000000) | list }}", "a list would have 1,000,000 items"),
    ("{{ ['x' * 1000000] * 100000 }}", "more than 1,000,000 characters as text"),
    ("{{ (['x' * 1000000] * 100000) | string }}", "more than 1,000,000 characters as text"),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "calls nest more than 40 deep"),
    (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% else %}"
        "{{ 'a' * 999999 }}{% endif %}{% endmacro %}{{ f(30) }}",
        "a string would be 1,999,998 characters",
    ),
    ("{% for x in range(10) recursive %}{{ loop(range(10)) }}{% endfor %}", "calls nest"),
    (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "took longer than",
    ),
    (
        "{% for a in range(100000) %}{% for b in range(100000) %}xxxxxxxxxx"
        "{% endfor %}{% endfor %}",
        "the rendered text would be",
    ),
    (
        "{% set s %}{% for a in range(100000) %}{% for b in range(100000) %}xxxxxxxxxx"
        "{% endfor %}{% endfor %}{% endset %}{{ s | length }}",
        "characters of text in all",
    ),
    ("{% for a in range(100000) %}{{ 'y' * 999 }}{% endfor %}", "characters"),
    ("{{ [].pop }}", "access to attribute 'pop' of 'list' object is unsafe"),
    ("{{ params.items.append(1) }}", "access to attribute 'append'"),
    ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__'"),
    ("{{ 'a'.upper }}", "is a function (upper), not data"),
    ("{{ range }}", "is a function"),
    ("{{ range(3) }}", "is a range (add |list"),
    ("{{ params.items | map('string') }}", "is a generator (add |list"),
    ("{{ dict(f=range) }}", "is a function"),
    ("{{ '%s' | format(range) }}", "the argument of 'format' is a function"),
    ("{{ '%s' % range }}", "a formatted value is a function"),
    ("{{ '{!r}'.format(range) }}", "a formatted value is a function"),
    ("{{ 'x' ~ range }}", "is a function"),
    ("{{ [range] | join }}", "item is a function"),
    ("{{ self }}", "is a TemplateReference object, not data"),
    ("{{ 'nan' | float }}", "not JSON data"),
    ("{{ 'a' | encode }}", "No filter named 'encode'"),
    ("{{ 1 | pprint }}", "No filter named 'pprint'"),
    ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "nests too deeply"),
    ("{% for a in [1] %}" * 25 + "x" + "{% endfor %}" * 25, "nests too deeply to compile"),
]


@pytest.mark.parametrize(("text", "fragment"), HOSTILE, ids=[t[:60] for t, _ in HOSTILE])
def test_hostile_expressions_are_stopped_with_a_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        render_value({"p": text}, CONTEXT)
    assert fragment in caught.value.message
    assert "…" in caught.value.message or repr(text)[:40] in caught.value.message


def test_the_time_limit_reads_the_clock_it_is_given() -> None:
    ticks = itertools.count()
    limits = ExpressionLimits(max_seconds=1000, clock=lambda: float(next(ticks)))
    # Each step reads the clock once: a loop of 10,000 steps passes 1,000 "seconds".
    with pytest.raises(ExpressionError, match="took longer than 1000s"):
        render_value("{% for x in range(10000) %}{% endfor %}", CONTEXT, limits)
    ticks = itertools.count()
    assert render_value("{% for x in range(100) %}{% endfor %}.", CONTEXT, limits) == "."


def test_a_step_count_stops_an_evaluation_without_a_clock() -> None:
    limits = ExpressionLimits(max_steps=500, clock=lambda: 0.0)
    with pytest.raises(ExpressionError, match="more than 500 steps"):
        render_value("{% for x in range(1000) %}{% endfor %}", CONTEXT, limits)


def test_limits_are_configurable() -> None:
    small = ExpressionLimits(max_value_chars=10, max_items=5, max_call_depth=3)
    with pytest.raises(ExpressionError, match="limit of 10"):
        render_value("{{ 'a' * 11 }}", CONTEXT, small)
    with pytest.raises(ExpressionError, match="limit of 5"):
        render_value("{{ range(6) | list }}", CONTEXT, small)
    with pytest.raises(ExpressionError, match="nest more than 3 deep"):
        render_value(NORMAL[29][0], CONTEXT, small)
    assert render_value("{{ 'a' * 10 }}", CONTEXT, small) == "a" * 10


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ lipsum(10**9) }}", "unknown name 'lipsum'"),
        ("{{ cycler(1, 2) }}", "unknown name 'cycler'"),
        ("{% set ns = namespace(a='') %}{{ ns.a }}", "unknown name 'namespace'"),
        ("{{ joiner() }}", "unknown name 'joiner'"),
        ("{{ param.n }}", "unknown name 'param'"),
        ("{{ (" * 2000 + "1" + ") }}" * 2000, "nests too deeply"),
    ],
)
def test_static_checks_refuse_unknown_names_and_deep_nesting(text: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        check_template(text)
    assert fragment in caught.value.message
    with pytest.raises(ExpressionError):
        check_condition(text.replace("{{", "").replace("}}", "").strip() or "lipsum")


# -- through the real CLI --------------------------------------------------------------

RUN_TIMEOUT = 240


def _task(text: str) -> dict[str, Any]:
    return {
        "action": "agent_task",
        "agent_id": "echo",
        "parameters": {"value": text},
        "critical": False,
    }


def test_hostile_parameters_fail_their_tasks_in_a_real_run(cli_process, workspace: Path) -> None:
    """Every payload is a task of one workflow: validate accepts it (nothing is wrong
    until it runs), the run ends within the timeout, each task failed with the limit
    named, no internal error, and the journal stays small."""
    tasks = {f"t{index}": _task(text) for index, (text, _) in enumerate(HOSTILE[:-4])}
    tasks["condition"] = {
        "action": "condition_check",
        "parameters": {"expression": "'a' * 10**9"},
        "critical": False,
    }
    tasks["guarded"] = {**_task("ok"), "conditions": ["range(10**9) | list"]}
    tasks["fine"] = _task("{{ params.n * 2 }}")
    path = write_definition(workspace, tasks, params={"n": 21, "items": [1, 2, 3]})
    checked = cli_process("validate", str(path), timeout=RUN_TIMEOUT)
    assert checked.returncode == 0, checked.stderr
    result = cli_process("run", str(path), "--json", timeout=RUN_TIMEOUT)
    assert result.returncode in (0, 1), result.stderr
    for output in (result.stdout, result.stderr):
        assert "internal error" not in output and "Traceback" not in output
    instance = json.loads(result.stdout)["id"]
    status = json.loads(cli_process("status", instance, "--json").stdout)
    for index, (_, fragment) in enumerate(HOSTILE[:-4]):
        task = status["tasks"][f"t{index}"]
        assert task["state"] == "failed", (index, task)
        assert fragment in task["error"]["message"], (index, task["error"])
        assert task["error"]["kind"] == "expression"
    assert status["tasks"]["condition"]["state"] == "failed"
    assert "1,000,000,000 characters" in status["tasks"]["condition"]["error"]["message"]
    assert status["tasks"]["guarded"]["state"] == "failed"
    assert "range() would have" in status["tasks"]["guarded"]["error"]["message"]
    assert status["tasks"]["fine"]["output"] == {"value": 42}
    journal = workspace / "instances" / instance / "events.jsonl"
    assert journal.stat().st_size < 1_000_000


@pytest.mark.parametrize(
    "text",
    [
        "{{ lipsum(10**9) }}",
        "{{ lipsum }}",
        "{{ 'x' ~ cycler }}",
        "{{ " + "[" * 5000 + "]" * 5000 + " }}",
        "{% for a in [1] %}" * 25 + "{% endfor %}" * 25,
    ],
)
def test_what_validation_can_see_is_refused_with_exit_2(cli_process, workspace, text) -> None:
    path = write_definition(workspace, {"t": _task(text)})
    for command in ("validate", "run"):
        result = cli_process(command, str(path), timeout=RUN_TIMEOUT)
        assert result.returncode == 2, (command, result.stderr)
        assert "/tasks/t/parameters/value" in result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not (workspace / "instances").exists() or not any((workspace / "instances").iterdir())


def test_a_tiny_definition_cannot_write_a_huge_journal(cli, workspace: Path) -> None:
    """298 bytes once made a 200 MB journal: the rendered value is refused instead."""
    path = write_definition(
        workspace,
        {
            "w": {
                "action": "file_operation",
                "parameters": {
                    "operation": "write",
                    "path": "out.txt",
                    "content": "{{ 'a' * 10**8 }}",
                },
            }
        },
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 1
    instance = result.json()["id"]
    status = cli("status", instance, "--json").json()
    assert "'*' would be 100,000,000 characters" in status["tasks"]["w"]["error"]["message"]
    assert not (workspace / "out.txt").exists()
    assert (workspace / "instances" / instance / "events.jsonl").stat().st_size < 100_000


def test_debug_shows_parameters_that_do_not_render_to_data(cli, workspace: Path) -> None:
    path = write_definition(
        workspace, {"a": _task("{{ range(3) }}"), "b": _task("{{ 'x'.upper }}")}
    )
    result = cli("run", str(path), "--json")
    instance = result.json()["id"]
    for task in ("a", "b"):
        shown = cli("debug", instance, task)
        assert shown.exit_code == 0, shown
        assert "rendering fails" in shown.stdout
        assert "not data" in shown.stdout
        as_json = cli("debug", instance, task, "--json")
        assert as_json.exit_code == 0, as_json
        account = as_json.json()["tasks"][0]
        assert account["parameters_rendered"] is False
        assert "not data" in account["parameters_error"]
