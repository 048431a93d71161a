"""Whether a document is certainly valid under a JSON Schema, decided without jsonschema.

`compile_schema` turns a schema (without ``$ref``: see ``validation.flattened``) into a
check that answers True (valid: jsonschema's Draft 2020-12 validator reports no error),
False (invalid: it reports one) or None (not sure). It knows the keywords the
definition schemas use, with jsonschema's meaning exactly; a schema node with any other
keyword, and any value that is not plain JSON (dict, list, str, int, float, bool, None,
each exactly), answer None. Callers run jsonschema whenever the answer is not True, so
its messages stay the only ones users see; the one property that matters is that True
is never answered for a document jsonschema finds an error in.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sized
from typing import Any

# True: valid; False: invalid; None: not sure.
Verdict = bool | None
Check = Callable[[Any], Verdict]

_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})
_SCALARS = frozenset({str, int, float, bool, type(None)})
# Keywords that never make an instance invalid (annotations, and the definitions that
# references would name).
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
)
_NUMBERS = (int, float)


def compile_schema(schema: Any) -> Check:
    """The check of `schema` (a JSON Schema without ``$ref``)."""
    return _node(schema)


def _valid(_: Any) -> Verdict:
    return True


def _invalid(_: Any) -> Verdict:
    return False


def _unsure(_: Any) -> Verdict:
    return None


def _all(checks: list[Check], instance: Any) -> Verdict:
    """False when any check is False, else None when any is unsure, else True. (This
    loop and the like in the checks below are written out: through `_every` and a
    generator, checking a definition takes about twice as long.)"""
    verdict: Verdict = True
    for check in checks:
        result = check(instance)
        if result is False:
            return False
        if result is None:
            verdict = None
    return verdict


def _then(verdict: Verdict, rest: list[Check], instance: Any) -> Verdict:
    """`verdict` (True or None) on a node's own keywords, with those of `rest` after."""
    if not rest:
        return verdict
    tail = _all(rest, instance)
    return tail if verdict is True or tail is False else None


def _node(schema: Any) -> Check:
    if schema is True:
        return _valid
    if schema is False:
        return _invalid
    if type(schema) is not dict:
        return _unsure
    fused = _typed_node(schema)
    if fused is not None:
        return fused
    checks = _keyword_checks(schema, ())
    if checks is None:
        return _unsure
    if not checks:
        return _valid
    if len(checks) == 1:
        only = checks[0]

        def node(instance: Any) -> Verdict:
            if type(instance) not in _PLAIN:
                return None
            return only(instance)

        return node

    def nodes(instance: Any) -> Verdict:
        if type(instance) not in _PLAIN:
            return None
        verdict: Verdict = True
        for check in checks:  # `_all`, written out: each value of a document comes here
            result = check(instance)
            if result is False:
                return False
            if result is None:
                verdict = None
        return verdict

    return nodes


def _keyword_checks(schema: dict[str, Any], skip: tuple[str, ...]) -> list[Check] | None:
    """A check per keyword of `schema` but those in `skip` (None when a keyword is not
    one this module reads exactly)."""
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("then", "else") or keyword in skip:
            continue  # then/else: with if
        make = _KEYWORDS.get(keyword)
        if make is None:
            return None
        check = make(value, schema)
        if check is None:
            return None
        checks.append(check)
    return checks


# The same checks as `nodes` makes of the keywords, fused into one function for the nodes
# nearly every value of a definition meets: a node with ``type`` of one kind (the type
# tested once, not by each keyword), and an object's ``required``, ``properties`` and
# ``additionalProperties`` in one pass over its items. A check's answer does not depend
# on the order its keywords are tested in: False if any says so, else None if any is
# unsure, else True.
_FUSED_OBJECT = (
    "type",
    "required",
    "properties",
    "additionalProperties",
    "allOf",
    "unevaluatedProperties",
)
_FUSED_STRING = ("type", "minLength", "maxLength", "pattern")


def _typed_node(schema: dict[str, Any]) -> Check | None:
    kind = schema.get("type")
    if "patternProperties" in schema:
        return None
    if kind is None and ("properties" in schema or "required" in schema):
        return _object_node(schema, typed=False)
    if type(kind) is not str:
        return None
    if kind == "object":
        return _object_node(schema, typed=True)
    if kind == "string":
        return _string_node(schema)
    if kind == "array" and "items" in schema and "prefixItems" not in schema:
        return _array_node(schema)
    if kind in _TYPE_NAMES or kind == "number":
        rest = _keyword_checks(schema, ("type",))
        if rest is None or rest:
            return None
        exact = frozenset({int, float}) if kind == "number" else frozenset({_TYPE_NAMES[kind]})

        def only_type(instance: Any) -> Verdict:
            kind = type(instance)
            if kind in exact:
                return True
            return False if kind in _PLAIN else None

        return only_type
    return None


def _object_node(schema: dict[str, Any], *, typed: bool) -> Check | None:
    """An object's keywords in one pass over its items: ``required``, ``properties``,
    ``additionalProperties``, ``unevaluatedProperties: false`` (a name no ``properties``
    here or in an ``allOf`` member lists: unsure), and the ``allOf`` members of a node
    of type object that only list properties (their checks joined to this node's)."""
    named = schema.get("properties", {})
    required = schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    members = schema.get("allOf", [])
    unevaluated = schema.get("unevaluatedProperties", True)
    if type(named) is not dict or type(required) is not list or type(members) is not list:
        return None
    if not all(type(name) is str for name in required) or type(unevaluated) is not bool:
        return None
    rest = _keyword_checks(schema, _FUSED_OBJECT)
    if rest is None:
        return None
    listed: dict[str, list[Check]] = {}
    for name, sub in named.items():
        listed.setdefault(name, []).append(_node(sub))
    others = []
    for member in members:
        if typed and _lists_properties(member):
            for name, sub in member["properties"].items():
                listed.setdefault(name, []).append(_node(sub))
        else:
            others.append(member)
    if others:
        rest.append(_all_checks([_node(member) for member in others]))
    subs = {name: _all_checks(checks) for name, checks in listed.items()}
    names = tuple(required)
    closed = additional is False
    extra = None if additional is True or closed else _node(additional)
    known = _evaluated_names(schema) if unevaluated is False else None

    def check(instance: Any) -> Verdict:
        if type(instance) is not dict:
            if type(instance) not in _PLAIN:
                return None
            if typed:
                return False
            return _all(rest, instance)
        for name in names:
            if name not in instance:
                return False
        verdict: Verdict = True
        for name, item in instance.items():
            sub = subs.get(name)
            if sub is None:
                if closed:
                    return False
                if extra is None:
                    # a name no properties list here may still be evaluated by oneOf, if
                    # or then: not sure
                    if known is not None and name not in known:
                        verdict = None
                    continue
                sub = extra
            result = sub(item)
            if result is False:
                return False
            if result is None:
                verdict = None
        return _then(verdict, rest, instance)

    return check


def _lists_properties(member: Any) -> bool:
    """Whether an allOf member of an object's node only lists properties."""
    return (
        type(member) is dict
        and set(member) <= {"type", "properties"}
        and member.get("type", "object") == "object"
        and type(member.get("properties")) is dict
    )


def _all_checks(checks: list[Check]) -> Check:
    """One check that holds when each of `checks` does."""
    if len(checks) == 1:
        return checks[0]

    def check(instance: Any) -> Verdict:
        return _all(checks, instance)

    return check


def _array_node(schema: dict[str, Any]) -> Check | None:
    """A list's ``type`` and ``items`` in one function (its other keywords after)."""
    rest = _keyword_checks(schema, ("type", "items"))
    if rest is None:
        return None
    sub = _node(schema["items"])

    def check(instance: Any) -> Verdict:
        if type(instance) is not list:
            return False if type(instance) in _PLAIN else None
        verdict: Verdict = True
        for item in instance:
            result = sub(item)
            if result is False:
                return False
            if result is None:
                verdict = None
        return _then(verdict, rest, instance)

    return check


def _string_node(schema: dict[str, Any]) -> Check | None:
    shortest, longest = schema.get("minLength", 0), schema.get("maxLength")
    pattern = schema.get("pattern")
    if type(shortest) is not int or (longest is not None and type(longest) is not int):
        return None
    if pattern is not None and type(pattern) is not str:
        return None
    rest = _keyword_checks(schema, _FUSED_STRING)
    if rest is None:
        return None
    search = re.compile(pattern).search if pattern is not None else None

    def check(instance: Any) -> Verdict:
        if type(instance) is not str:
            return False if type(instance) in _PLAIN else None
        size = len(instance)
        if size < shortest or (longest is not None and size > longest):
            return False
        if search is not None and search(instance) is None:
            return False
        verdict: Verdict = True
        return _then(verdict, rest, instance)

    return check


# Each keyword's maker: the keyword's value and its schema node in, a check out (None
# when the value is not one this module reads exactly). A check sees only plain JSON
# values (the node's check looked at the type first).


def _type(value: Any, _: dict[str, Any]) -> Check | None:
    names = [value] if type(value) is str else value
    if type(names) is not list or not all(type(n) is str for n in names):
        return None
    exact: set[type] = set()
    integer = False
    for name in names:
        if name == "integer":
            integer = True
            exact.add(int)
        elif name == "number":
            exact |= {int, float}
        elif name in _TYPE_NAMES:
            exact.add(_TYPE_NAMES[name])
        else:
            return None
    kinds = frozenset(exact)

    def check(instance: Any) -> Verdict:
        kind = type(instance)
        if kind in kinds:
            return True
        # integer: a float with no fraction counts (1.0), a bool never does
        return integer and kind is float and instance.is_integer()

    return check


_TYPE_NAMES: dict[str, type] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _required(value: Any, _: dict[str, Any]) -> Check | None:
    if type(value) is not list or not all(type(name) is str for name in value):
        return None
    names = tuple(value)

    def check(instance: Any) -> Verdict:
        if type(instance) is not dict:
            return True
        return all(name in instance for name in names)

    return check


def _properties(value: Any, _: dict[str, Any]) -> Check | None:
    if type(value) is not dict:
        return None
    checks = {name: _node(sub) for name, sub in value.items()}

    def check(instance: Any) -> Verdict:
        if type(instance) is not dict:
            return True
        verdict: Verdict = True
        for name, item in instance.items():
            sub = checks.get(name)
            if sub is None:
                continue
            result = sub(item)
            if result is False:
                return False
            if result is None:
                verdict = None
        return verdict

    return check


def _additional_properties(value: Any, schema: dict[str, Any]) -> Check | None:
    if "patternProperties" in schema:
        return None
    named = schema.get("properties", {})
    if type(named) is not dict:
        return None
    listed = frozenset(named)
    if value is True:
        return _valid
    if value is False:

        def closed(instance: Any) -> Verdict:
            if type(instance) is not dict:
                return True
            return all(name in listed for name in instance)

        return closed
    sub = _node(value)

    def extras(instance: Any) -> Verdict:
        if type(instance) is not dict:
            return True
        verdict: Verdict = True
        for name, item in instance.items():
            if name in listed:
                continue
            result = sub(item)
            if result is False:
                return False
            if result is None:
                verdict = None
        return verdict

    return extras


def _evaluated_names(schema: Any) -> frozenset[str] | None:
    """Property names that jsonschema certainly counts as evaluated at a node whose
    every keyword holds: its ``properties`` and those of its ``allOf`` members (all of
    them valid then), or None for all names (``additionalProperties`` holds for each
    name ``properties`` does not list). Other applicators may add names; leaving them
    out only makes the check unsure more often."""
    if type(schema) is not dict:
        return frozenset()
    if "additionalProperties" in schema:
        return None
    names = set(schema.get("properties", {}))
    for member in schema.get("allOf", []):
        more = _evaluated_names(member)
        if more is None:
            return None
        names |= more
    return frozenset(names)


def _unevaluated_properties(value: Any, schema: dict[str, Any]) -> Check | None:
    if value is True:
        return _valid
    if value is not False:
        return None
    if type(schema.get("properties", {})) is not dict or type(schema.get("allOf", [])) is not list:
        return None
    names = _evaluated_names(schema)
    if names is None:
        return _valid
    known = names

    def check(instance: Any) -> Verdict:
        if type(instance) is not dict:
            return True
        # a name outside `known` may still be evaluated by oneOf, if or then: not sure
        return True if all(name in known for name in instance) else None

    return check


def _pattern(value: Any, _: dict[str, Any]) -> Check | None:
    if type(value) is not str:
        return None
    search = re.compile(value).search

    def check(instance: Any) -> Verdict:
        return type(instance) is not str or search(instance) is not None

    return check


def _size_bound(
    kind: type[Sized], compare: Callable[[int, int], bool]
) -> Callable[..., Check | None]:
    """A bound on the length of a `kind` (characters, items, properties)."""

    def make(value: Any, _: dict[str, Any]) -> Check | None:
        if type(value) is not int:
            return None

        def check(instance: Any) -> Verdict:
            return type(instance) is not kind or compare(len(instance), value)

        return check

    return make


def _number_bound(compare: Callable[[Any, Any], bool]) -> Callable[..., Check | None]:
    def make(value: Any, _: dict[str, Any]) -> Check | None:
        if type(value) not in _NUMBERS:
            return None

        def check(instance: Any) -> Verdict:
            kind = type(instance)
            if kind is not int and kind is not float:
                return True
            return compare(instance, value)

        return check

    return make


def equal(one: Any, two: Any) -> Verdict:
    """jsonschema's equality (``_utils.equal``) of plain JSON values: True and 1 differ,
    1 and 1.0 do not, containers compare deeply; None when either holds something that
    is not plain JSON."""
    if one is two:
        return True
    kind_one, kind_two = type(one), type(two)
    if kind_one not in _PLAIN or kind_two not in _PLAIN:
        return None
    if kind_one is str or kind_two is str:
        return bool(one == two)
    if kind_one is list and kind_two is list:
        if len(one) != len(two):
            return False
        return _every(equal(a, b) for a, b in zip(one, two, strict=True))
    if kind_one is dict and kind_two is dict:
        if len(one) != len(two):
            return False
        if any(key not in two for key in one):
            return False
        return _every(equal(item, two[key]) for key, item in one.items())
    if kind_one in (list, dict) or kind_two in (list, dict):
        return False
    if kind_one is bool or kind_two is bool:
        return kind_one is kind_two and one == two
    return bool(one == two)


def _every(verdicts: Any) -> Verdict:
    result: Verdict = True
    for verdict in verdicts:
        if verdict is False:
            return False
        if verdict is None:
            result = None
    return result


def _const(value: Any, _: dict[str, Any]) -> Check | None:
    if type(value) is str:  # `equal` of plain JSON and text: ==

        def text(instance: Any) -> Verdict:
            return type(instance) is str and instance == value

        return text

    def check(instance: Any) -> Verdict:
        return equal(instance, value)

    return check


def _enum(value: Any, _: dict[str, Any]) -> Check | None:
    if type(value) is not list:
        return None
    options = tuple(value)
    strings = frozenset(o for o in options if type(o) is str)

    def check(instance: Any) -> Verdict:
        if type(instance) is str and instance in strings:
            return True
        verdict: Verdict = False
        for option in options:
            result = equal(instance, option)
            if result is True:
                return True
            if result is None:
                verdict = None
        return verdict

    return check


def _items(value: Any, schema: dict[str, Any]) -> Check | None:
    if "prefixItems" in schema:
        return None
    sub = _node(value)

    def check(instance: Any) -> Verdict:
        if type(instance) is not list:
            return True
        verdict: Verdict = True
        for item in instance:
            result = sub(item)
            if result is False:
                return False
            if result is None:
                verdict = None
        return verdict

    return check


def _unique_key(item: Any) -> tuple[int, Any]:
    kind = type(item)
    if kind is bool:
        return (0, item)
    if kind is int or kind is float:
        return (1, item)
    if kind is str:
        return (2, item)
    return (3, None)  # null


def _unique_items(value: Any, _: dict[str, Any]) -> Check | None:
    if value is False:
        return _valid
    if value is not True:
        return None

    def check(instance: Any) -> Verdict:
        if type(instance) is not list:
            return True
        if all(type(item) is str for item in instance):
            return len(set(instance)) == len(instance)
        if not all(type(item) in _SCALARS for item in instance):
            return None  # containers, or values that are not plain JSON: jsonschema decides
        keys = [_unique_key(item) for item in instance]
        if len(set(keys)) == len(keys):
            return True
        # jsonschema compares neighbours after sorting, and may miss a repeated NaN
        return None

    return check


def _property_names(value: Any, _: dict[str, Any]) -> Check | None:
    sub = _node(value)

    def check(instance: Any) -> Verdict:
        if type(instance) is not dict:
            return True
        verdict: Verdict = True
        for name in instance:  # written out: a definition's every task id comes here
            result = sub(name)
            if result is False:
                return False
            if result is None:
                verdict = None
        return verdict

    return check


def _all_of(value: Any, _: dict[str, Any]) -> Check | None:
    if type(value) is not list:
        return None
    checks = [_node(sub) for sub in value]

    def check(instance: Any) -> Verdict:
        return _all(checks, instance)

    return check


def _one_of(value: Any, _: dict[str, Any]) -> Check | None:
    if type(value) is not list:
        return None
    checks = [_node(sub) for sub in value]

    def check(instance: Any) -> Verdict:
        valid = unsure = 0
        for sub in checks:
            result = sub(instance)
            if result is True:
                valid += 1
                if valid > 1:
                    return False  # valid under two: jsonschema reports it
            elif result is None:
                unsure += 1
        if unsure:
            return None
        return valid == 1

    return check


def _if(value: Any, schema: dict[str, Any]) -> Check | None:
    condition = _node(value)
    then = _node(schema.get("then", True))
    otherwise = _node(schema.get("else", True))

    def check(instance: Any) -> Verdict:
        holds = condition(instance)
        if holds is True:
            return then(instance)
        if holds is False:
            return otherwise(instance)
        both = then(instance), otherwise(instance)
        return both[0] if both[0] == both[1] else None

    return check


_KEYWORDS: dict[str, Callable[[Any, dict[str, Any]], Check | None]] = {
    "type": _type,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
    "pattern": _pattern,
    "minLength": _size_bound(str, operator.ge),
    "maxLength": _size_bound(str, operator.le),
    "const": _const,
    "enum": _enum,
    # each written as jsonschema's test, negated (NaN passes every bound there)
    "minimum": _number_bound(lambda instance, bound: not instance < bound),
    "maximum": _number_bound(lambda instance, bound: not instance > bound),
    "exclusiveMinimum": _number_bound(lambda instance, bound: not instance <= bound),
    "exclusiveMaximum": _number_bound(lambda instance, bound: not instance >= bound),
    "minItems": _size_bound(list, operator.ge),
    "items": _items,
    "uniqueItems": _unique_items,
    "minProperties": _size_bound(dict, operator.ge),
    "propertyNames": _property_names,
    "allOf": _all_of,
    "oneOf": _one_of,
    "if": _if,
}
