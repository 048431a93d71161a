"""Reading definition and template files (JSON or YAML), keeping note of duplicate keys.

What comes out is plain JSON data, bounded: at most ``MAX_NESTING`` levels deep, at
most ``MAX_VALUES`` values (YAML aliases counted as expanded, so a "billion laughs"
file is refused while it is read), finite numbers, and nothing YAML builds beyond JSON
(dates, sets, bytes, ordered pairs). Anything else is a DefinitionError naming the file
and, where it can, the place (a JSON pointer and a line).
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workflow_cli.errors import DefinitionError, Problem, what_it_is

MAX_NESTING = 64  # objects and lists inside one another
MAX_VALUES = 2_000_000  # values in one document (YAML aliases expanded)
MAX_DOCUMENT_BYTES = 64_000_000
_MAX_PROBLEMS = 20  # the first problems of a broken document are enough to act on


class _Mapping(dict[str, Any]):
    """A parsed object that remembers keys it saw more than once."""

    duplicates: list[str]


def _pairs_to_mapping(pairs: list[tuple[str, Any]]) -> _Mapping:
    mapping = _Mapping()
    mapping.duplicates = []
    for key, value in pairs:
        if key in mapping:
            mapping.duplicates.append(key)
        mapping[key] = value
    return mapping


class _KeyTwice(ValueError):
    """A JSON object holds a key twice (read as plain data, the last would silently win)."""


def _pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _KeyTwice(f"duplicate key '{key}'")
            seen.add(key)
    return mapping


def loads_json(text: str) -> Any:
    """A JSON value given on a command line (or in a file it names): NaN and Infinity,
    which Python reads but JSON does not have, and a key written twice in one object
    are a ValueError."""
    return json.loads(text, object_pairs_hook=_pairs_to_dict, parse_constant=_refuse_constant)


def pointer_join(base: str, key: str | int) -> str:
    """JSON pointer of `key` under `base` (RFC 6901 escaping)."""
    return f"{base}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _pointer(path: tuple[str | int, ...]) -> str:
    pointer = ""
    for key in path:
        pointer = pointer_join(pointer, key)
    return pointer


def _has_duplicates(value: Any) -> bool:
    if isinstance(value, dict):
        if getattr(value, "duplicates", None):
            return True
        children: Iterable[Any] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    # Written out (not any(...) over a generator) and calling only for containers: this
    # walks every value of a definition, and the two cost a third of its time.
    for item in children:  # noqa: SIM110
        if isinstance(item, (dict, list)) and _has_duplicates(item):
            return True
    return False


def duplicate_key_problems(value: Any, pointer: str = "") -> list[Problem]:
    if not _has_duplicates(value):  # the usual case, without building a pointer per value
        return []
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key in getattr(value, "duplicates", []):
            problems.append(Problem(pointer_join(pointer, key), f"duplicate key '{key}'"))
        for key, item in value.items():
            problems.extend(duplicate_key_problems(item, pointer_join(pointer, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(duplicate_key_problems(item, pointer_join(pointer, index)))
    return problems


class _Foreign:
    """A YAML value with no JSON counterpart, kept only to report where it was."""

    def __init__(self, kind: str, line: int, text: str) -> None:
        self.kind = kind
        self.line = line
        self.text = text

    def __str__(self) -> str:  # as a mapping key: the text as written
        return self.text


_FOREIGN_TAGS = {
    "tag:yaml.org,2002:timestamp": "date or time",
    "tag:yaml.org,2002:set": "set (!!set)",
    "tag:yaml.org,2002:binary": "binary value (!!binary)",
    "tag:yaml.org,2002:omap": "ordered map (!!omap)",
    "tag:yaml.org,2002:pairs": "list of pairs (!!pairs)",
}


def plain_problems(value: Any) -> list[Problem]:
    """Where `value` is not bounded plain JSON data (depth, count, kinds, numbers)."""
    if 0 <= _plain_size(value, 0) <= MAX_VALUES:  # the usual case: no path per value
        return []
    return _plain_walk(value)


def _plain_size(value: Any, depth: int) -> int:
    """How many values `value` holds, when it is plain JSON data no deeper than
    `MAX_NESTING` (counting from `depth`); -1 when it is not, or may not be (a subclass
    of a JSON kind): `_plain_walk` then says where."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return 1
    if kind is float:
        return 1 if math.isfinite(value) else -1
    if kind is list:
        children: Iterable[Any] = value
    elif kind is dict or kind is _Mapping:
        children = value.values()
    else:
        return -1
    if depth >= MAX_NESTING:
        return -1
    total = 1
    for item in children:
        # Text, whole numbers, booleans and null counted here, not by a call for each:
        # most values of a definition are those.
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            total += 1
            continue
        size = _plain_size(item, depth + 1)
        if size < 0:
            return -1
        total += size
    return total


def _plain_walk(value: Any) -> list[Problem]:
    problems: list[Problem] = []
    count = 0
    # Each value's path, made into a JSON pointer only for a value with a problem.
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack and len(problems) < _MAX_PROBLEMS:
        item, path = stack.pop()
        depth = len(path)
        count += 1
        if count > MAX_VALUES:
            problems.append(Problem("", f"holds more than {MAX_VALUES:,} values (the limit)"))
            break
        if isinstance(item, (dict, list)) and depth >= MAX_NESTING:
            problems.append(
                Problem(
                    _pointer(path), f"is nested more than {MAX_NESTING} levels deep (the limit)"
                )
            )
        elif isinstance(item, dict):
            pairs = reversed(item.items())  # popped in the document's order
            stack.extend((v, (*path, k)) for k, v in pairs)
        elif isinstance(item, list):
            items = reversed(list(enumerate(item)))
            stack.extend((v, (*path, i)) for i, v in items)
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(Problem(_pointer(path), f"{item} is not a finite number"))
        elif isinstance(item, _Foreign):
            problems.append(
                Problem(
                    _pointer(path),
                    f"is a YAML {item.kind} (line {item.line}), not JSON data;"
                    " put it in quotes to keep it as text",
                )
            )
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            problems.append(Problem(_pointer(path), f"is a {type(item).__name__}, not JSON data"))
    return problems


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_document(text: str, source: str, *, yaml_syntax: bool) -> Any:
    """Parse JSON or YAML text into bounded plain data; a syntax error or a value that is
    not plain JSON data is a DefinitionError naming the place."""
    if not yaml_syntax:
        try:
            try:  # plain dicts, unless a key is written twice: then mappings that say so
                document = json.loads(
                    text, object_pairs_hook=_pairs_to_dict, parse_constant=_refuse_constant
                )
            except _KeyTwice:
                document = json.loads(
                    text, object_pairs_hook=_pairs_to_mapping, parse_constant=_refuse_constant
                )
        except json.JSONDecodeError as exc:
            raise DefinitionError(
                source,
                [Problem("", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")],
            ) from exc
        except RecursionError as exc:
            raise DefinitionError(
                source, [Problem("", f"nested more than {MAX_NESTING} levels deep (the limit)")]
            ) from exc
        except ValueError as exc:  # NaN, Infinity, an integer of thousands of digits
            raise DefinitionError(source, [Problem("", f"not valid JSON: {_number(exc)}")]) from exc
    else:
        document = _parse_yaml(text, source)
    problems = plain_problems(document)
    if problems:
        raise DefinitionError(source, problems)
    return document


def _parse_yaml(text: str, source: str) -> Any:
    import yaml

    class _TooMuch(yaml.YAMLError):
        pass

    class _Loader(yaml.SafeLoader):
        """Counts nesting and values (aliases expanded) while composing, before
        anything is built, and keeps YAML-only values as `_Foreign` markers."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0
            self.sizes: dict[int, int] = {}

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_NESTING + 1:
                    mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                    raise _TooMuch(
                        f"nested more than {MAX_NESTING} levels deep (the limit),"
                        f" line {mark.line + 1}"
                    )
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
            self._count(node)
            return node

        def _count(self, node: Any) -> None:
            if id(node) in self.sizes:
                return  # an alias of a node counted already
            if isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            else:
                children = []
            size = 1 + sum(self.sizes.get(id(child), 1) for child in children)
            if size > MAX_VALUES:
                raise _TooMuch(
                    f"holds more than {MAX_VALUES:,} values once its aliases are expanded"
                    f" (the limit), line {node.start_mark.line + 1}"
                )
            self.sizes[id(node)] = size

    def construct(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Mapping:
        pairs = [
            (loader.construct_object(k, deep=True), loader.construct_object(v, deep=True))
            for k, v in node.value
        ]
        return _pairs_to_mapping([(str(k), v) for k, v in pairs])

    def foreign(loader: yaml.SafeLoader, node: yaml.Node) -> _Foreign:
        text = node.value if isinstance(node.value, str) else ""
        return _Foreign(_FOREIGN_TAGS[node.tag], node.start_mark.line + 1, text)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct)
    for tag in _FOREIGN_TAGS:
        _Loader.add_constructor(tag, foreign)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise DefinitionError(source, [Problem("", f"not valid YAML: {exc}")]) from exc
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits
        raise DefinitionError(source, [Problem("", f"not valid YAML: {_number(exc)}")]) from exc


def _number(exc: Exception) -> str:
    if "integer string conversion" in str(exc):
        return f"a number has more than {sys.get_int_max_str_digits():,} digits"
    return str(exc)


def _check_regular(fd: int, path: Path) -> None:
    """Nothing when `fd` is a regular file; else it is closed and a DefinitionError says
    what `path` is (a folder, a named pipe or a device: refused, not waited on)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if stat.S_ISREG(mode):
        return
    os.close(fd)
    raise DefinitionError(str(path), [Problem("", f"is {what_it_is(mode)}, not a file")])


def load_document(path: Path) -> Any:
    """The parsed content of a .json, .yaml or .yml file (a regular file of at most
    ``MAX_DOCUMENT_BYTES``: a FIFO or a device is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise DefinitionError(str(path), [Problem("", "no such file")]) from exc
    except (OSError, ValueError) as exc:
        raise DefinitionError(str(path), [Problem("", f"cannot be read: {exc}")]) from exc
    try:
        _check_regular(fd, path)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise DefinitionError(
                str(path), [Problem("", f"is larger than {MAX_DOCUMENT_BYTES:,} bytes (the limit)")]
            )
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(str(path), [Problem("", f"cannot be read: {exc}")]) from exc
    return parse_document(text, str(path), yaml_syntax=path.suffix.lower() in (".yaml", ".yml"))


def load_plain(path: Path) -> Any:
    """`load_document`, as plain dicts and lists; a key written twice in one object is a
    DefinitionError (read as plain data, the last would silently win)."""
    document = load_document(path)
    if type(document) is dict:  # JSON with no key twice is read as plain dicts already
        return document
    duplicates = duplicate_key_problems(document)
    if duplicates:
        raise DefinitionError(str(path), duplicates)
    return plain(document)


def plain(value: Any) -> Any:
    """`value` with the duplicate-tracking mappings turned back into plain dicts."""
    if isinstance(value, dict):
        return {k: plain(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) if isinstance(v, (dict, list)) else v for v in value]
    return value
