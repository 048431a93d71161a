"""`readonly_dataclass` and `mutable_dataclass` compare, hash and show their values as
`dataclass` does."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

import pytest

from workflow_cli.readonly import mutable_dataclass, readonly_dataclass


def both(body: dict[str, Any], annotations: dict[str, str]) -> tuple[type[Any], type[Any]]:
    """The same class made by `readonly_dataclass` and by ``dataclass(unsafe_hash=True)``."""
    made: list[type[Any]] = []
    for decorate in (readonly_dataclass, dataclasses.dataclass(unsafe_hash=True)):
        namespace = {**body, "__annotations__": dict(annotations)}
        made.append(decorate(type("Value", (), namespace)))
    return made[0], made[1]


SHAPES = [
    ({}, {}, [()]),
    ({}, {"a": "int"}, [(1,), (2,)]),
    ({"b": 2}, {"a": "int", "b": "int"}, [(1, 2), (1, 3), (2, 2)]),
    (
        {"c": field(default=0, compare=False), "d": field(default=0, repr=False)},
        {"a": "int", "c": "int", "d": "int"},
        [(1, 5, 0), (1, 6, 0), (1, 5, 7)],
    ),
    ({"b": field(default=0, hash=False)}, {"a": "int", "b": "int"}, [(1, 2), (1, 3)]),
]


@pytest.mark.parametrize(("body", "annotations", "values"), SHAPES)
def test_equal_hashed_and_shown_as_a_dataclass(body, annotations, values) -> None:
    ours, theirs = both(body, annotations)
    mine = [ours(*v) for v in values]
    reference = [theirs(*v) for v in values]
    for i, (a, ra) in enumerate(zip(mine, reference, strict=True)):
        assert repr(a) == repr(ra)
        assert hash(a) == hash(ra)
        for b, rb in zip(mine[i:], reference[i:], strict=True):
            assert (a == b) == (ra == rb) and (a != b) == (ra != rb)
            assert (a == ours(*values[i])) is True
    assert mine[0] != reference[0]  # another class: never equal
    assert mine[0] != "text" and mine[0].__eq__("text") is NotImplemented
    assert dataclasses.replace(mine[0]) == mine[0]
    assert [f.name for f in dataclasses.fields(ours)] == list(annotations)
    assert ours.__match_args__ == theirs.__match_args__


def test_a_value_is_equal_to_itself_even_holding_nan() -> None:
    ours, theirs = both({}, {"a": "float"})
    value, reference = ours(math.nan), theirs(math.nan)
    assert (value == value) is (reference == reference) is True
    assert (value == ours(float("nan"))) is (reference == theirs(float("nan"))) is False


def test_a_value_that_holds_itself_is_shown_without_end() -> None:
    ours, theirs = both({}, {"a": "list"})
    value, reference = ours([]), theirs([])
    value.a.append(value)
    reference.a.append(reference)
    assert repr(value) == repr(reference) == "Value(a=[...])"


def test_an_unhashable_field_makes_the_value_unhashable() -> None:
    ours, _ = both({}, {"a": "list"})
    with pytest.raises(TypeError):
        hash(ours([1]))


def test_a_subclass_compares_its_own_fields() -> None:
    @readonly_dataclass
    class Base:
        a: int

    @readonly_dataclass
    class Child(Base):
        b: int = 0

    assert Child(1, 2) != Child(1, 3) and Child(1, 2) == Child(1, 2)
    assert Child(1, 0) != Base(1)
    assert repr(Child(1, 2)) == "test_a_subclass_compares_its_own_fields.<locals>.Child(a=1, b=2)"


@pytest.mark.parametrize(("body", "annotations", "values"), SHAPES)
def test_a_mutable_one_compares_and_shows_as_a_dataclass(body, annotations, values) -> None:
    made: list[type[Any]] = []
    for decorate in (mutable_dataclass, dataclasses.dataclass):
        namespace = {**body, "__annotations__": dict(annotations)}
        made.append(decorate(type("Value", (), namespace)))
    ours, theirs = made
    mine, reference = [ours(*v) for v in values], [theirs(*v) for v in values]
    assert ours.__hash__ is None and theirs.__hash__ is None  # unhashable, as it may change
    for i, (a, ra) in enumerate(zip(mine, reference, strict=True)):
        assert repr(a) == repr(ra)
        for b, rb in zip(mine, reference, strict=True):
            assert (a == b) == (ra == rb)
        assert a == ours(*values[i])
    if annotations:
        changed = ours(*values[0])
        setattr(changed, next(iter(annotations)), 99)
        assert changed != mine[0] and "=99" in repr(changed)
