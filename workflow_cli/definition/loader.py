"""Reading definition and template files (JSON or YAML), keeping note of duplicate keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workflow_cli.errors import DefinitionError, Problem


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


def pointer_join(base: str, key: str | int) -> str:
    """JSON pointer of `key` under `base` (RFC 6901 escaping)."""
    return f"{base}/{str(key).replace('~', '~0').replace('/', '~1')}"


def duplicate_key_problems(value: Any, pointer: str = "") -> list[Problem]:
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


def parse_document(text: str, source: str, *, yaml_syntax: bool) -> Any:
    """Parse JSON or YAML text; a syntax error is a DefinitionError naming the line."""
    if not yaml_syntax:
        try:
            return json.loads(text, object_pairs_hook=_pairs_to_mapping)
        except json.JSONDecodeError as exc:
            raise DefinitionError(
                source,
                [Problem("", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")],
            ) from exc
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def construct(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Mapping:
        pairs = [
            (loader.construct_object(k, deep=True), loader.construct_object(v, deep=True))
            for k, v in node.value
        ]
        return _pairs_to_mapping([(str(k), v) for k, v in pairs])

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise DefinitionError(source, [Problem("", f"not valid YAML: {exc}")]) from exc


def load_document(path: Path) -> Any:
    """The parsed content of a .json, .yaml or .yml file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DefinitionError(str(path), [Problem("", "no such file")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(str(path), [Problem("", f"cannot be read: {exc}")]) from exc
    return parse_document(text, str(path), yaml_syntax=path.suffix.lower() in (".yaml", ".yml"))


def plain(value: Any) -> Any:
    """`value` with the duplicate-tracking mappings turned back into plain dicts."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value
