"""The one expression language: Jinja2's sandbox with StrictUndefined.

Strings in a task's ``parameters`` may hold ``{{ … }}``; a string that is exactly one
``{{ expression }}`` yields the expression's value with its type (a number, a list, …),
any other string is rendered to text. ``conditions`` are bare expressions. Both see
``params`` (the instance's parameters), ``steps`` (``steps.ID.output``, ``steps.ID.state``
of earlier tasks) and ``instance`` (``instance.id``). Values are data: a rendered result
is never rendered again, so ``{{`` inside a parameter value stays text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from workflow_cli.errors import ExpressionError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

Context = Mapping[str, Any]
_WHOLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.DOTALL)
ROOT_NAMES = ("params", "steps", "instance")


def has_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@cache
def environment() -> SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    class DataEnvironment(SandboxedEnvironment):
        """``a.b`` on a mapping means its key "b" first (``params.items`` is a parameter
        called items, not the dict method), then the sandbox's attribute rules."""

        def getattr(self, obj: Any, attribute: str) -> Any:
            if isinstance(obj, Mapping) and attribute in obj:
                return obj[attribute]
            return super().getattr(obj, attribute)

    return DataEnvironment(undefined=StrictUndefined, autoescape=False)


@cache
def _compile(text: str) -> Callable[[Context], Any]:
    import jinja2

    env = environment()
    try:
        whole = _WHOLE.match(text)
        if whole:
            expression = env.compile_expression(whole.group("expr"), undefined_to_none=False)
            return lambda context: _defined(expression(**context))
        template = env.from_string(text)
        return lambda context: template.render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"does not parse: {exc.message} in {text!r}") from exc


@cache
def _compile_condition(expression: str) -> Callable[[Context], Any]:
    import jinja2

    try:
        compiled = environment().compile_expression(expression, undefined_to_none=False)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"does not parse: {exc.message} in {expression!r}") from exc
    return lambda context: _defined(compiled(**context))


def _defined(value: Any) -> Any:
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming what is missing
    return value


def _run(fn: Callable[[Context], Any], context: Context, source: str) -> Any:
    import jinja2

    try:
        return fn(context)
    except jinja2.UndefinedError as exc:
        raise ExpressionError(f"{exc.message} in {source!r}") from exc
    except jinja2.exceptions.SecurityError as exc:
        raise ExpressionError(f"not allowed: {exc} in {source!r}") from exc
    except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc} in {source!r}") from exc


def render_value(value: Any, context: Context) -> Any:
    """`value` with every templated string in it evaluated against `context`."""
    if isinstance(value, str):
        return _run(_compile(value), context, value) if has_template(value) else value
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value


def evaluate_expression(expression: str, context: Context) -> Any:
    """The value of a bare expression (no braces) in `context`."""
    return _run(_compile_condition(expression), context, expression)


def evaluate_condition(expression: str, context: Context) -> bool:
    """Whether the bare expression is true in `context`."""
    return bool(evaluate_expression(expression, context))


def check_template(text: str) -> None:
    """Raise ExpressionError if a templated string does not parse."""
    if has_template(text):
        _compile(text)


def check_condition(expression: str) -> None:
    """Raise ExpressionError if a condition does not parse."""
    _compile_condition(expression)


def references(text: str, *, bare: bool = False) -> set[tuple[str, str]]:
    """The (root, first key) pairs an expression reads, e.g. ("steps", "assess")."""
    from jinja2 import nodes

    env = environment()
    source = "{{ " + text + " }}" if bare else text
    try:
        tree = env.parse(source)
    except Exception:  # reported by check_template / check_condition
        return set()
    found: set[tuple[str, str]] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        inner = getattr(node, "node", None)
        if isinstance(inner, nodes.Name) and inner.name in ROOT_NAMES:
            if isinstance(node, nodes.Getattr):
                found.add((inner.name, node.attr))
            elif (
                isinstance(node, nodes.Getitem)
                and isinstance(node.arg, nodes.Const)
                and isinstance(node.arg.value, str)
            ):
                found.add((inner.name, node.arg.value))
    return found
