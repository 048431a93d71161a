"""The bounded sandbox that expressions run in.

Jinja2's ``SandboxedEnvironment`` keeps expressions away from Python's internals; this
module also keeps them small and short. Every evaluation runs under a `Budget` built
from `ExpressionLimits`:

- **time**: every call, attribute or item lookup, operator, filter and loop step checks
  a deadline, so an evaluation that runs too long is stopped where it is;
- **size**: a string, list or number that an operator (``*``, ``+``, ``%``, ``**``), a
  method, a filter or a format would make is measured or estimated *before* it is
  made and refused when it would pass a limit; all text made during one evaluation
  counts towards a total, so loops and macros cannot pile it up either;
- **depth**: calls (macros calling macros, recursive loops) nest only so deep.

Only data-shaped methods are reachable (``upper``, ``split``, ``replace``, ``get``,
``items``, …); the globals are ``range`` (bounded) and ``dict``. A value turned into
text (output, ``~``, formats, joins, text filters) must be data — text, numbers,
true/false, null, lists and objects — so no Python object's ``repr`` leaks out.

Every hook needs a budget. Jinja folds constant parts of a template while compiling,
outside any evaluation; there the hooks raise, which Jinja takes as "not constant",
so those parts are evaluated, under a budget, when the expression runs.
"""

from __future__ import annotations

import builtins
import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import field
from typing import TYPE_CHECKING, Any

from workflow_cli.errors import ExpressionError
from workflow_cli.readonly import mutable_dataclass, readonly_dataclass

if TYPE_CHECKING:
    from jinja2.runtime import Context as JinjaContext
    from jinja2.sandbox import SandboxedEnvironment

# One rendered value (a string, or a whole expression's value as JSON), and a task's
# rendered parameters together, are at most this many characters.
MAX_VALUE_CHARS = 1_000_000


@readonly_dataclass
class ExpressionLimits:
    """How much one evaluation may do.

    ``max_value_chars``: one string or value made (and a task's rendered parameters
    together). ``max_items``: a range or a list made. ``max_total_chars``: all text made
    during one evaluation, counted as it is made. ``max_int_bits``: an integer made by
    ``*`` or ``**``. ``max_call_depth``: calls inside calls (a macro calling itself).
    ``max_seconds``: time, on ``clock``. ``max_steps``: calls, lookups, operators and
    loop steps (None: not counted; a count is a limit that does not depend on the
    machine's speed). ``max_source_chars``: the text of one expression.
    """

    max_value_chars: int = MAX_VALUE_CHARS
    max_items: int = 100_000
    max_total_chars: int = 10 * MAX_VALUE_CHARS
    max_int_bits: int = 4096
    max_call_depth: int = 40
    max_seconds: float = 2.0
    max_steps: int | None = None
    max_source_chars: int = 100_000
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)


DEFAULT_LIMITS = ExpressionLimits()


class StepsExhausted(ExpressionError):
    """An evaluation used up its step count (``max_steps``)."""


class _NotEvaluating(ExpressionError):
    """A hook ran outside an evaluation: Jinja folding constants while compiling."""


class Budget:
    """What one evaluation has used so far, against its limits."""

    __slots__ = ("deadline", "depth", "limits", "made", "steps")

    def __init__(self, limits: ExpressionLimits) -> None:
        self.limits = limits
        self.deadline = limits.clock() + limits.max_seconds
        self.made = 0
        self.depth = 0
        self.steps = 0

    def tick(self) -> None:
        """One step: stop the evaluation when it has run out of time (or steps)."""
        self.steps += 1
        limits = self.limits
        if limits.max_steps is not None and self.steps > limits.max_steps:
            raise StepsExhausted(f"took more than {limits.max_steps:,} steps")
        if limits.clock() > self.deadline:
            raise ExpressionError(
                f"took longer than {limits.max_seconds:g}s and was stopped (the time limit)"
            )

    def check_chars(self, size: int, what: str) -> None:
        limit = self.limits.max_value_chars
        if size > limit:
            raise ExpressionError(
                f"{what} would be {size:,} characters, more than the limit of {limit:,}"
            )

    def check_items(self, count: int, what: str) -> None:
        limit = self.limits.max_items
        if count > limit:
            raise ExpressionError(
                f"{what} would have {count:,} items, more than the limit of {limit:,}"
            )

    def check_width(self, width: Any, what: str) -> None:
        if isinstance(width, int) and abs(width) > self.limits.max_value_chars:
            raise ExpressionError(
                f"{what} {width:,} is more than the limit of {self.limits.max_value_chars:,}"
            )

    def charge(self, size: int) -> None:
        """Count `size` characters (or items) made towards the evaluation's total."""
        self.made += size
        if self.made > self.limits.max_total_chars:
            raise ExpressionError(
                f"made more than {self.limits.max_total_chars:,} characters of text in all"
                " and was stopped"
            )

    def measure(self, value: Any, *sources: Any) -> None:
        """Check and count a string or list just made (not one passed through)."""
        if any(value is source for source in sources):
            return
        if isinstance(value, str):
            self.check_chars(len(value), "a string")
            self.charge(len(value))
        elif isinstance(value, (list, tuple, dict)):
            self.check_items(len(value), "a list")
            self.charge(len(value))
        elif isinstance(value, int) and value.bit_length() > self.limits.max_int_bits:
            raise ExpressionError(
                f"a number of {value.bit_length():,} bits is larger than the limit of"
                f" {self.limits.max_int_bits:,}"
            )

    def data_size(self, value: Any, what: str, limit: int | None = None) -> int:
        """About how many characters `value` takes as text; refused when it is not data
        or when it would be longer than `limit` (default: one value's limit)."""
        from jinja2 import Undefined

        limit = self.limits.max_value_chars if limit is None else limit
        size = 0
        stack = [value]
        while stack:
            item = stack.pop()
            if item is None or isinstance(item, bool):
                size += 5
            elif isinstance(item, str):
                size += len(item) + 2
            elif isinstance(item, int):
                size += item.bit_length() // 3 + 2
            elif isinstance(item, float):
                size += 24
            elif isinstance(item, (list, tuple)):
                size += 2 + len(item)
                stack.extend(item)
            elif isinstance(item, Mapping):  # a dict, or a live view such as ``steps``
                size += 2 + 2 * len(item)
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, Undefined):
                str(item)  # StrictUndefined raises UndefinedError naming what is missing
                raise ExpressionError(f"{what} is undefined")
            else:
                raise ExpressionError(f"{what} is {describe(item)}, not data")
            if size > limit:
                raise ExpressionError(
                    f"{what} would be more than {limit:,} characters as text (the limit)"
                )
        return size

    def text_of(self, value: Any, what: str) -> str:
        """`value` as text (as Jinja prints it), when it is data of a bounded size."""
        if not isinstance(value, str):
            self.data_size(value, what)
        return str(value)

    def join(self, separator: str, items: Iterable[Any], what: str) -> str:
        """``separator.join`` of the items as text, refused before it gets too long."""
        separator = self.text_of(separator, "a join's separator")
        pieces: list[str] = []
        total = 0
        for item in items:
            self.tick()
            piece = self.text_of(item, f"{what} item")
            total += len(piece) + (len(separator) if pieces else 0)
            self.check_chars(total, what)
            pieces.append(piece)
        self.charge(total)
        return separator.join(pieces)


_local = threading.local()


def current_budget() -> Budget:
    budget: Budget | None = getattr(_local, "budget", None)
    if budget is None:
        raise _NotEvaluating("evaluated outside an evaluation")
    return budget


@contextmanager
def compiling() -> Iterator[None]:
    """Compile with no budget in force: Jinja's constant folding then finds every hook
    refusing, and leaves those parts to run time, where a budget applies."""
    previous = getattr(_local, "budget", None)
    _local.budget = None
    try:
        yield
    finally:
        _local.budget = previous


@contextmanager
def evaluating(limits: ExpressionLimits) -> Iterator[Budget]:
    """Run what is inside under a fresh budget (per thread)."""
    previous = getattr(_local, "budget", None)
    budget = Budget(limits)
    _local.budget = budget
    try:
        yield budget
    finally:
        _local.budget = previous


def describe(value: Any) -> str:
    """What a non-data value is, for messages ("a function (range)")."""
    from collections.abc import ItemsView, KeysView, ValuesView

    from jinja2.runtime import LoopContext, Macro

    if isinstance(value, Macro):
        return f"a macro ({value.name})"
    if isinstance(value, LoopContext):
        return "the loop object"
    if isinstance(value, (Iterator, range, KeysView, ValuesView, ItemsView)):
        return f"a {type(value).__name__} (add |list to make it a list)"
    if callable(value):
        return f"a function ({getattr(value, '__name__', type(value).__name__)})"
    if isinstance(value, float):
        return "a number that is not finite"
    return f"a {type(value).__name__} object"


# Methods an expression may call, by the type of the value they belong to; everything
# else is refused, so nothing reachable mutates data or builds unbounded objects.
STR_METHODS = frozenset({
    "capitalize", "casefold", "center", "count", "endswith", "expandtabs", "find", "format",
    "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
    "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper",
    "join", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
    "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
    "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
})  # fmt: skip
MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})
SEQUENCE_METHODS = frozenset({"count", "index"})
# Filters that turn their value (and arguments) into text: they get data only.
TEXT_FILTERS = frozenset({
    "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "lower",
    "replace", "safe", "string", "striptags", "title", "tojson", "trim", "truncate", "upper",
    "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
})  # fmt: skip
WRAP_MAX_CHARS = 100_000
TOJSON_MAX_INDENT = 16
REMOVED_FILTERS = frozenset({"pprint"})  # the repr of anything: objects would leak out
# Compiled on first use (re keeps it): most runs never format with %.
_PERCENT = (
    r"(?s)%(?:\((?P<key>[^)]*)\))?(?P<flags>[-#0 +]*)(?P<width>\*|\d+)?"
    r"(?:\.(?P<precision>\*|\d+))?[hlL]?(?P<type>.)"
)


def _check_spec_numbers(budget: Budget, spec: str, what: str) -> None:
    for digits in re.findall(r"\d+", spec):
        if len(digits) > 9 or int(digits) > budget.limits.max_value_chars:
            raise ExpressionError(
                f"{what} '{spec[:40]}' asks for a width or precision over the limit of"
                f" {budget.limits.max_value_chars:,}"
            )


def percent_format(budget: Budget, template: str, values: Any) -> str:
    """``template % values``, one field at a time, each checked before it is made."""
    mapping = values if isinstance(values, Mapping) else None
    positional = values if isinstance(values, tuple) else (values,)
    pieces: list[str] = []
    used = 0
    keyed = False
    position = 0
    total = 0
    for match in re.finditer(_PERCENT, template):
        budget.tick()
        pieces.append(template[position : match.start()])
        total += match.start() - position
        position = match.end()
        if match.group(0) == "%%":
            pieces.append("%")
            total += 1
            continue
        if "*" in (match["width"] or "") + (match["precision"] or ""):
            raise ExpressionError("'*' widths are not supported in '%' formats")
        spec = match.group(0)
        _check_spec_numbers(budget, spec, "the format")
        if match["key"] is not None:
            if mapping is None:
                raise TypeError("format requires a mapping")
            keyed = True
            value = mapping[match["key"]]
            spec = "%" + spec[len(match["key"]) + 3 :]
        else:
            if used >= len(positional):
                raise TypeError("not enough arguments for format string")
            value = positional[used]
            used += 1
        if not isinstance(value, str):
            budget.data_size(value, "a formatted value")
        piece = spec % (value,)
        total += len(piece)
        budget.check_chars(total, "the formatted text")
        budget.charge(len(piece))
        pieces.append(piece)
    rest = template[position:]
    if "%" in rest:
        raise ValueError("incomplete format")
    if not keyed and mapping is None and used < len(positional):
        raise TypeError("not all arguments converted during string formatting")
    pieces.append(rest)
    return "".join(pieces)


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _check_str_method(budget: Budget, text: str, name: str, args: tuple[Any, ...]) -> None:
    """Refuse a str method call that would make too long a string, before it runs."""
    if name in ("center", "ljust", "rjust", "zfill") and args:
        budget.check_width(args[0], f"'{name}' width")
    elif name == "expandtabs":
        tabsize = args[0] if args and isinstance(args[0], int) else 8
        budget.check_chars(len(text) + text.count("\t") * max(tabsize, 0), "'expandtabs' text")
    elif name == "replace" and len(args) >= 2:
        _check_replace(budget, text, args[0], args[1], args[2] if len(args) > 2 else -1)


def _check_replace(budget: Budget, text: str, old: Any, new: Any, count: Any) -> None:
    if not isinstance(old, str) or not isinstance(new, str):
        return
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    growth = max(0, len(new) - len(old))
    budget.check_chars(len(text) + times * growth, "the text 'replace' makes")


# -- filters ------------------------------------------------------------------------


@mutable_dataclass
class FilterCall:
    """One call of a filter: its function and its arguments (after Jinja's own)."""

    name: str
    fn: Callable[..., Any]
    lead: tuple[Any, ...]  # the context Jinja passes first, for filters that take one
    rest: tuple[Any, ...]  # the value, then the filter's own arguments
    kwargs: dict[str, Any]

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        value = _arg(self.rest, self.kwargs, index, name)
        return default if value is None else value

    def run(self) -> Any:
        return self.fn(*self.lead, *self.rest, **self.kwargs)


def _filter_center(budget: Budget, call: FilterCall) -> Any:
    budget.check_width(call.arg(1, "width"), "'center' width")
    return call.run()


def _filter_indent(budget: Budget, call: FilterCall) -> Any:
    text = budget.text_of(call.arg(0, "s", ""), "the indented text")
    width = call.arg(1, "width", 4)
    budget.check_width(width, "'indent' width")
    size = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    budget.check_chars(len(text) + (text.count("\n") + 1) * max(size, 0), "the indented text")
    return call.run()


def _filter_format(budget: Budget, call: FilterCall) -> Any:
    if not call.rest:
        return call.run()
    template = budget.text_of(call.rest[0], "a format")
    if call.rest[1:] and call.kwargs:
        raise TypeError("can't handle positional and keyword arguments at the same time")
    return percent_format(budget, template, call.kwargs or tuple(call.rest[1:]))


def _filter_join(budget: Budget, call: FilterCall) -> Any:
    from jinja2.filters import make_attrgetter

    items = call.arg(0, "value", ())
    attribute = call.arg(2, "attribute")
    if attribute is not None:
        items = map(make_attrgetter(call.lead[0].environment, attribute), items)
    return budget.join(call.arg(1, "d", ""), items, "the joined text")


def _filter_replace(budget: Budget, call: FilterCall) -> Any:
    text = budget.text_of(call.arg(0, "s", ""), "the text")
    old, new = call.arg(1, "old"), call.arg(2, "new")
    if old is not None and new is not None:
        _check_replace(budget, text, str(old), str(new), call.arg(3, "count", -1))
    return call.run()


def _filter_wordwrap(budget: Budget, call: FilterCall) -> Any:
    text = budget.text_of(call.arg(0, "s", ""), "the wrapped text")
    # Wrapping is plain Python that no step interrupts: keep its input small.
    if len(text) > WRAP_MAX_CHARS:
        raise ExpressionError(
            f"'wordwrap' takes text of at most {WRAP_MAX_CHARS:,} characters, not {len(text):,}"
        )
    width = call.arg(1, "width", 79)
    wrap = call.arg(3, "wrapstring", "\n")
    if isinstance(width, int) and width > 0 and isinstance(wrap, str):
        # Lines hold at most `width` characters: at least this many of them.
        kept = len(text) - sum(text.count(space) for space in " \t\n\r")
        lines = -(-kept // width)
        budget.check_chars(kept + max(lines - 1, 0) * len(wrap), "the wrapped text")
    return call.run()


def _filter_counting(index: int, name: str, what: str) -> Callable[[Budget, FilterCall], Any]:
    """A filter whose argument `name` is a count of items it makes (batch, slice)."""

    def run(budget: Budget, call: FilterCall) -> Any:
        count = call.arg(index, name)
        if isinstance(count, int):
            budget.check_items(count, what)
        return call.run()

    return run


def _filter_round(budget: Budget, call: FilterCall) -> Any:
    precision = call.arg(1, "precision", 0)
    if isinstance(precision, int) and abs(precision) > 1000:
        raise ExpressionError(f"'round' precision {precision:,} is more than the limit of 1,000")
    return call.run()


def _filter_sum(budget: Budget, call: FilterCall) -> Any:
    from jinja2.filters import make_attrgetter

    items = call.arg(0, "iterable", ())
    attribute = call.arg(1, "attribute")
    total = call.arg(2, "start", 0)
    if isinstance(total, str):
        raise TypeError("sum() can't sum strings [use |join instead]")
    if attribute is not None:
        items = map(make_attrgetter(call.lead[0], attribute), items)
    for item in items:
        total = bounded_binop(budget, "+", total, item)
    return total


def _filter_tojson(budget: Budget, call: FilterCall) -> Any:
    value = call.arg(0, "value")
    size = budget.data_size(value, "the value for 'tojson'")
    indent = call.arg(1, "indent")
    if isinstance(indent, int) and indent > 0:
        if indent > TOJSON_MAX_INDENT:
            raise ExpressionError(
                f"'tojson' indent {indent:,} is more than the limit of {TOJSON_MAX_INDENT}"
            )
        # At most one line per character, each indented by its depth.
        budget.check_chars(size * (2 + _depth(value) * indent), "the JSON text")
    return call.run()


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, (list, tuple)):
            stack.extend((part, depth + 1) for part in item)
        elif isinstance(item, dict):
            stack.extend((part, depth + 1) for part in item.values())
    return deepest


_FILTER_CALLS: dict[str, Callable[[Budget, FilterCall], Any]] = {
    "center": _filter_center,
    "indent": _filter_indent,
    "format": _filter_format,
    "join": _filter_join,
    "replace": _filter_replace,
    "wordwrap": _filter_wordwrap,
    "batch": _filter_counting(1, "linecount", "a batch"),
    "slice": _filter_counting(1, "slices", "the slices"),
    "round": _filter_round,
    "sum": _filter_sum,
    "tojson": _filter_tojson,
}


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    from jinja2.utils import _PassArg

    skip = 0 if _PassArg.from_obj(fn) is None else 1
    special = _FILTER_CALLS.get(name)
    text_filter = name in TEXT_FILTERS

    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.tick()
        call = FilterCall(name, fn, args[:skip], args[skip:], kwargs)
        if text_filter:
            for index, value in enumerate((*call.rest, *kwargs.values())):
                if not isinstance(value, str):
                    role = "value" if index == 0 else "argument"
                    budget.data_size(value, f"the {role} of '{name}'")
        result = special(budget, call) if special else fn(*args, **kwargs)
        budget.measure(result, *call.rest)
        return result

    return bounded


# -- operators ----------------------------------------------------------------------


def bounded_binop(budget: Budget, operator: str, left: Any, right: Any) -> Any:
    """``left operator right`` for the operators that can make large values (``*``,
    ``+``, ``**``, ``%``), refused before it makes something too large."""
    budget.tick()
    sequences = (str, list, tuple)
    if operator == "%":
        if isinstance(left, str):
            return percent_format(budget, left, right)
        return left % right
    if operator == "*":
        if isinstance(left, sequences) and isinstance(right, int):
            _check_repeat(budget, left, right)
        elif isinstance(right, sequences) and isinstance(left, int):
            _check_repeat(budget, right, left)
        elif isinstance(left, int) and isinstance(right, int):
            _check_bits(budget, left.bit_length() + right.bit_length(), "'*'")
        result = left * right
    elif operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            budget.check_chars(len(left) + len(right), "'+'")
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            budget.check_items(len(left) + len(right), "'+'")
        result = left + right
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _check_bits(budget, left.bit_length() * right, "'**'")
        result = left**right
    else:
        raise ExpressionError(f"unknown operator {operator!r}")
    budget.measure(result, left, right)
    return result


def _check_repeat(budget: Budget, sequence: Any, times: int) -> None:
    count = len(sequence) * max(times, 0)
    if isinstance(sequence, str):
        budget.check_chars(count, "'*'")
    else:
        budget.check_items(count, "'*'")


def _check_bits(budget: Budget, bits: int, what: str) -> None:
    if bits > budget.limits.max_int_bits:
        raise ExpressionError(
            f"{what} would make a number of about {bits:,} bits, larger than the limit of"
            f" {budget.limits.max_int_bits:,}"
        )


# -- the environment ----------------------------------------------------------------


def build_environment() -> SandboxedEnvironment:
    """The sandboxed, bounded environment every expression is compiled in."""
    from jinja2 import StrictUndefined, nodes
    from jinja2.runtime import LoopContext
    from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter

    class BoundedFormatter(SandboxedFormatter):
        """``str.format`` whose every field is data, checked before it is made."""

        def convert_field(self, value: Any, conversion: str | None) -> Any:
            if conversion is not None and not isinstance(value, str):
                current_budget().data_size(value, "a formatted value")
            return super().convert_field(value, conversion)

        def format_field(self, value: Any, format_spec: str) -> Any:
            budget = current_budget()
            budget.tick()
            _check_spec_numbers(budget, format_spec, "the format")
            if not isinstance(value, str):
                budget.data_size(value, "a formatted value")
            text = super().format_field(value, format_spec)
            budget.charge(len(text))
            return text

    class BoundedEnvironment(SandboxedEnvironment):
        """``a.b`` on a mapping means its key "b" first (``params.items`` is a parameter
        called items, not the dict method), then the sandbox's attribute rules."""

        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def __init__(self) -> None:
            super().__init__(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
            self.globals.clear()
            bounded_range = self.bounded_range

            def range(*args: int) -> builtins.range:  # named so messages say "range"
                return bounded_range(*args)

            self.globals.update(range=range, dict=dict)
            self.filters = {
                name: _bounded_filter(name, fn)
                for name, fn in self.filters.items()
                if name not in REMOVED_FILTERS
            }

        # Hooks the compiled code calls -----------------------------------------

        def getattr(self, obj: Any, attribute: str) -> Any:
            current_budget().tick()
            if isinstance(obj, Mapping) and attribute in obj:
                return obj[attribute]
            return super().getattr(obj, attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            current_budget().tick()
            return super().getitem(obj, argument)

        def call_binop(self, context: JinjaContext, operator: str, left: Any, right: Any) -> Any:
            return bounded_binop(current_budget(), operator, left, right)

        def call(
            __self,  # Jinja passes every argument by position
            __context: JinjaContext,
            __obj: Any,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            budget = current_budget()
            budget.tick()
            owner = getattr(__obj, "__self__", None)
            name = getattr(__obj, "__name__", "")
            if isinstance(owner, str) and name in STR_METHODS:
                if name == "join":
                    return budget.join(owner, args[0] if args else (), "the joined text")
                _check_str_method(budget, owner, name, args)
            if budget.depth >= budget.limits.max_call_depth:
                raise ExpressionError(
                    f"calls nest more than {budget.limits.max_call_depth} deep"
                    " (a macro or loop that calls itself without end?)"
                )
            budget.depth += 1
            try:
                result = super().call(__context, __obj, *args, **kwargs)
            finally:
                budget.depth -= 1
            budget.measure(result, owner, *args)
            return result

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            if not super().is_safe_attribute(obj, attr, value):
                return False
            if isinstance(obj, str):
                return attr in STR_METHODS
            if isinstance(obj, Mapping):
                return attr in MAPPING_METHODS
            if isinstance(obj, (list, tuple)):
                return attr in SEQUENCE_METHODS
            return isinstance(obj, LoopContext)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None
            owner: str = value.__self__
            formatter = BoundedFormatter(self)
            is_map = value.__name__ == "format_map"

            def bounded_format(*args: Any, **kwargs: Any) -> str:
                if not is_map:
                    return str(formatter.vformat(owner, args, kwargs))
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return str(formatter.vformat(owner, (), args[0]))

            return functools.update_wrapper(bounded_format, value)

        # Functions the rewritten templates call ---------------------------------

        def bounded_range(self, *args: int) -> range:
            budget = current_budget()
            numbers = range(*args)
            try:
                count = len(numbers)
            except OverflowError:
                count = budget.limits.max_items + 1
            budget.check_items(count, "range()")
            return numbers

        def bounded_iter(self, iterable: Any, chars_per_step: int = 0) -> Iterator[Any]:
            """A loop's items, each a step; the loop body's fixed text counts as made."""
            budget = current_budget()

            def steps() -> Iterator[Any]:
                for item in iterable:
                    budget.tick()
                    if chars_per_step:
                        budget.charge(chars_per_step)
                    yield item

            return steps()

        def bounded_concat(self, *parts: Any) -> str:
            """``a ~ b``: the parts as text, refused before the result gets too long."""
            return current_budget().join("", parts, "'~'")

        def _generate(
            self,
            source: nodes.Template,
            name: str | None,
            filename: str | None,
            defer_init: bool = False,
        ) -> str:
            return super()._generate(
                _bound_tree(source, self), name, filename, defer_init=defer_init
            )

    return BoundedEnvironment()


def _finalize(value: Any) -> str:
    """Every ``{{ … }}`` printed in a template: data only, counted as made."""
    budget = current_budget()
    text = budget.text_of(value, "a printed value")
    budget.check_chars(len(text), "a printed value")
    budget.charge(len(text))
    return text


def _bound_tree(tree: Any, environment: Any) -> Any:
    """Rewrite a parsed template so that loops step the budget and ``~`` is checked."""
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    class Bounder(NodeTransformer):
        def visit_For(self, node: nodes.For) -> nodes.Node:
            self.generic_visit(node)
            fixed = sum(len(data.data) for data in node.find_all(nodes.TemplateData))
            node.iter = nodes.Call(
                nodes.EnvironmentAttribute("bounded_iter"),
                [node.iter, nodes.Const(fixed)],
                [],
                None,
                None,
                lineno=node.lineno,
            )
            return node

        def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
            self.generic_visit(node)
            return nodes.Call(
                nodes.EnvironmentAttribute("bounded_concat"),
                node.nodes,
                [],
                None,
                None,
                lineno=node.lineno,
            )

    bounded = Bounder().visit(tree)
    bounded.set_environment(environment)
    return bounded
