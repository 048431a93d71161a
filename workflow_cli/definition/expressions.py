"""The one expression language: Jinja2's sandbox with StrictUndefined, bounded.

Strings in a task's ``parameters`` may hold ``{{ … }}``; a string that is exactly one
``{{ expression }}`` yields the expression's value with its type (a number, a list, …),
any other string is rendered to text. ``conditions`` are bare expressions. Both see
``params`` (the instance's parameters), ``steps`` (``steps.ID.output``, ``steps.ID.state``
of earlier tasks) and ``instance`` (``instance.id``), and the functions ``range`` and
``dict``. Values are data: a rendered result is never rendered again, so ``{{`` inside a
parameter value stays text, and a result that is not JSON data (a function, a
generator, …) is an error.

Every evaluation is bounded in time, size and depth (see `sandbox.ExpressionLimits`);
going past a limit is an ExpressionError that names the limit. A task's rendered
parameters together are bounded like one value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from workflow_cli.definition.sandbox import (
    DEFAULT_LIMITS,
    Budget,
    ExpressionLimits,
    build_environment,
    compiling,
    evaluating,
)
from workflow_cli.errors import ExpressionError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

Context = Mapping[str, Any]
# Patterns are compiled when first used (and kept in re's cache), not on import.
_WHOLE = r"(?s)^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$"
ROOT_NAMES = ("params", "steps", "instance", "secrets")
# A compensation's parameters also see ``task`` (the task being undone); the static
# check cannot tell where an expression is, so it takes that name everywhere.
# A for_each task's parameters and conditions also see ``item`` and ``index``; a repeat's
# ``until`` sees ``output`` and ``iteration`` (which its parameters see too). Validation
# says where each may be used (`loop_names`).
LOOP_NAMES = ("item", "index", "iteration", "output")
# A wait_for_event task's filter also sees ``event`` (the signal: name, data, by, time).
EVENT_NAME = "event"
KNOWN_NAMES = (*ROOT_NAMES, "task", *LOOP_NAMES, EVENT_NAME)
GLOBAL_NAMES = ("range", "dict")


def has_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@cache
def environment() -> SandboxedEnvironment:
    return build_environment()


def _shorten(text: str, limit: int = 120) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 1] + "…")


def _check_source(text: str, limits: ExpressionLimits) -> None:
    if len(text) > limits.max_source_chars:
        raise ExpressionError(
            f"an expression of {len(text):,} characters is longer than the limit of"
            f" {limits.max_source_chars:,}: {_shorten(text)}"
        )


Compiled = Callable[[Context, Budget], Any]


@cache
def _compile(text: str) -> Compiled:
    _check_source(text, DEFAULT_LIMITS)
    env = environment()
    whole = re.match(_WHOLE, text)
    try:
        with compiling():
            if whole:
                expression = env.compile_expression(whole.group("expr"), undefined_to_none=False)
                return lambda context, budget: expression(**context)
            template = env.from_string(text)
    except Exception as exc:
        raise _compile_error(exc, text) from exc

    def render(context: Context, budget: Budget) -> str:
        pieces: list[str] = []
        size = 0
        for piece in template.generate(**context):
            size += len(piece)
            budget.check_chars(size, "the rendered text")
            pieces.append(piece)
        return "".join(pieces)

    return render


@cache
def _compile_condition(expression: str) -> Compiled:
    _check_source(expression, DEFAULT_LIMITS)
    try:
        with compiling():
            compiled = environment().compile_expression(expression, undefined_to_none=False)
    except Exception as exc:
        raise _compile_error(exc, expression) from exc
    return lambda context, budget: compiled(**context)


def _compile_error(exc: Exception, source: str) -> ExpressionError:
    import jinja2

    if isinstance(exc, jinja2.TemplateSyntaxError):
        return ExpressionError(f"does not parse: {exc.message} in {_shorten(source)}")
    if isinstance(exc, (RecursionError, SyntaxError, MemoryError)):
        # Python's own compiler refuses what nests too deeply (brackets, 20+ loops).
        return ExpressionError(f"nests too deeply to compile: {_shorten(source)}")
    return ExpressionError(f"does not compile: {type(exc).__name__}: {exc} in {_shorten(source)}")


def _run(fn: Compiled, context: Context, source: str, budget: Budget) -> Any:
    import jinja2

    try:
        return _defined(fn(context, budget))
    except ExpressionError as exc:
        raise ExpressionError(f"{exc.message} in {_shorten(source)}") from exc
    except jinja2.UndefinedError as exc:
        raise ExpressionError(f"{exc.message} in {_shorten(source)}") from exc
    except jinja2.exceptions.SecurityError as exc:
        raise ExpressionError(f"not allowed: {exc} in {_shorten(source)}") from exc
    except RecursionError as exc:
        raise ExpressionError(f"nests too deeply in {_shorten(source)}") from exc
    except MemoryError as exc:  # a last resort: the limits are meant to stop this first
        raise ExpressionError(f"ran out of memory in {_shorten(source)}") from exc
    except Exception as exc:  # anything else an expression does wrong is the user's error
        message = exc.message if isinstance(exc, jinja2.TemplateError) else str(exc)
        raise ExpressionError(f"{type(exc).__name__}: {message} in {_shorten(source)}") from exc


def _defined(value: Any) -> Any:
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming what is missing
    return value


def _mapping_as_dict(value: Any) -> dict[str, Any]:
    """A mapping that is not a dict (a live view such as ``steps``), as a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _as_data(value: Any, budget: Budget, source: str, limit: int) -> tuple[Any, int]:
    """`value` as plain JSON data (tuples become lists) and its size as JSON text."""
    if isinstance(value, str):
        return str(value), len(value)
    try:
        budget.data_size(value, "the value", limit)
        text = json.dumps(value, allow_nan=False, default=_mapping_as_dict)
    except ExpressionError as exc:
        raise ExpressionError(f"{exc.message} in {_shorten(source)}") from exc
    except ValueError as exc:  # NaN or infinity, or an integer too long for JSON
        raise ExpressionError(f"the value is not JSON data ({exc}) in {_shorten(source)}") from exc
    except TypeError as exc:
        raise ExpressionError(f"the value is not JSON data ({exc}) in {_shorten(source)}") from exc
    return json.loads(text), len(text)


def render_value(value: Any, context: Context, limits: ExpressionLimits = DEFAULT_LIMITS) -> Any:
    """`value` with every templated string in it evaluated against `context`.

    One budget covers the whole value: its time limit, and its rendered strings and
    values together at most ``limits.max_value_chars`` characters (as JSON)."""
    with evaluating(limits) as budget:
        return _render(value, context, budget, limits, [0])


def _render(
    item: Any, context: Context, budget: Budget, limits: ExpressionLimits, made: list[int]
) -> Any:
    """`render_value` of one part (a function of the module: a nested one refers to
    itself and leaves a cycle for the garbage collector at every call)."""
    if isinstance(item, str):
        if not has_template(item):
            return item
        rendered = _run(_compile(item), context, item, budget)
        result, size = _as_data(rendered, budget, item, limits.max_value_chars)
        made[0] += size
        if made[0] > limits.max_value_chars:
            raise ExpressionError(
                f"the rendered values come to more than {limits.max_value_chars:,}"
                f" characters (the limit), at {_shorten(item)}"
            )
        return result
    if isinstance(item, dict):
        return {key: _render(part, context, budget, limits, made) for key, part in item.items()}
    if isinstance(item, list):
        return [_render(part, context, budget, limits, made) for part in item]
    return item


def evaluate_expression(
    expression: str, context: Context, limits: ExpressionLimits = DEFAULT_LIMITS
) -> Any:
    """The value of a bare expression (no braces) in `context`, as JSON data."""
    with evaluating(limits) as budget:
        value = _run(_compile_condition(expression), context, expression, budget)
        return _as_data(value, budget, expression, limits.max_value_chars)[0]


def evaluate_condition(
    expression: str, context: Context, limits: ExpressionLimits = DEFAULT_LIMITS
) -> bool:
    """Whether the bare expression is true in `context`."""
    return bool(evaluate_expression(expression, context, limits))


@cache
def _tree(source: str) -> Any:
    """The parsed template `source` (Jinja's nodes, only read by those who ask: each
    expression is parsed once, however many questions are asked of it)."""
    return environment().parse(source)


@cache
def _unknown_names(text: str) -> frozenset[str]:
    """The names an expression reads that are not roots, functions or its own."""
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(_tree(text)) - set(KNOWN_NAMES))


@cache
def loop_names(text: str, *, bare: bool = False) -> frozenset[str]:
    """The names of `LOOP_NAMES` an expression reads (none when it does not parse)."""
    from jinja2 import meta

    source = "{{ " + text + " }}" if bare else text
    try:
        names = meta.find_undeclared_variables(_tree(source))
    except Exception:  # a parse error: reported by compiling
        return frozenset()
    return frozenset(names) & frozenset(LOOP_NAMES)


@cache
def reads_event(text: str, *, bare: bool = False) -> bool:
    """Whether an expression reads ``event`` (false when it does not parse)."""
    from jinja2 import meta

    source = "{{ " + text + " }}" if bare else text
    try:
        return EVENT_NAME in meta.find_undeclared_variables(_tree(source))
    except Exception:  # a parse error: reported by compiling
        return False


def _check_names(text: str, bare: bool) -> None:
    """Refuse names that are neither a root nor a function nor set by the expression:
    they can only be undefined when it runs (``lipsum``, ``cycler``, a typo)."""
    source = "{{ " + text + " }}" if bare else text
    try:
        unknown = _unknown_names(source)
    except Exception:  # a parse error: reported by compiling
        return
    if unknown:
        names = ", ".join(f"'{name}'" for name in sorted(unknown))
        raise ExpressionError(
            f"unknown name {names} in {_shorten(text)}; expressions read"
            f" {', '.join(ROOT_NAMES)} (and task, when undoing one) and call"
            f" {' and '.join(GLOBAL_NAMES)}()"
        )


def check_template(text: str) -> None:
    """Raise ExpressionError if a templated string does not parse or uses unknown names."""
    if has_template(text):
        _compile(text)
        _check_names(text, bare=False)


def check_condition(expression: str) -> None:
    """Raise ExpressionError if a condition does not parse or uses unknown names."""
    _compile_condition(expression)
    _check_names(expression, bare=True)


def references(text: str, *, bare: bool = False) -> set[tuple[str, str]]:
    """The (root, first key) pairs an expression reads, e.g. ("steps", "assess")."""
    return set(_references(text, bare))


@cache
def _references(text: str, bare: bool) -> frozenset[tuple[str, str]]:
    from jinja2 import nodes

    source = "{{ " + text + " }}" if bare else text
    try:
        tree = _tree(source)
    except Exception:  # reported by check_template / check_condition
        return frozenset()
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
    return frozenset(found)
