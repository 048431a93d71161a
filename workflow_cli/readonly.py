"""`readonly_dataclass`: the dataclass of a value — its fields are read-only, and it is
compared and hashed by them; `mutable_dataclass`: a ``@dataclass`` made the same cheap way.

Read-only is checked by the type checker (mypy rejects assigning a field), not at run
time: ``@dataclass(frozen=True)`` would check it at run time too, but makes Python
generate and compile a ``__setattr__`` and a ``__delattr__`` for every class, and an
``__init__`` that sets each field through ``object.__setattr__``, when its module is
imported: 8 % of the instructions of a whole one-task ``workflow_cli run`` (some sixty
classes on its path), and every instance slower to make. Use ``dataclasses.replace`` to
change a field, as with a frozen dataclass.

For the same reason only ``__init__`` is generated (and compiled) per class by both: ``__eq__``,
``__hash__`` and ``__repr__`` are the same few functions for every class, reading the
class's fields through an `operator.attrgetter`, and behave as the ones `dataclass`
writes (equal when of the same class with equal compared fields, the hash of those
fields' tuple, ``Name(field=value, ...)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function from an object to the tuple of its attributes `names`."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        name = names[0]
        return lambda self: (getattr(self, name),)
    return lambda self: ()


_in_repr = threading.local()  # ids of the objects whose repr is being made, per thread


def _share_methods(cls: type[Any], *, hashable: bool) -> None:
    """Give the dataclass `cls` the shared ``__eq__`` and ``__repr__`` (unless its body has
    its own, as `dataclass` does), and ``__hash__``: by the fields, or None."""
    found = fields(cls)
    compared = _getter(tuple(f.name for f in found if f.compare))
    hashed = _getter(tuple(f.name for f in found if f.hash or (f.hash is None and f.compare)))
    shown = tuple(f.name for f in found if f.repr)

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    def __repr__(self: Any) -> str:
        busy = _in_repr.__dict__.setdefault("ids", set())
        if id(self) in busy:
            return "..."
        busy.add(id(self))
        try:
            shown_fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        finally:
            busy.discard(id(self))
        return f"{self.__class__.__qualname__}({shown_fields})"

    for method in (__eq__, __repr__):
        if method.__name__ not in cls.__dict__:
            method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
            setattr(cls, method.__name__, method)
    if hashable:
        __hash__.__qualname__ = f"{cls.__qualname__}.__hash__"
    cls.__hash__ = __hash__ if hashable else None  # type: ignore[assignment]


@dataclass_transform(frozen_default=True)
def readonly_dataclass(cls: type[T]) -> type[T]:
    """Make `cls` a dataclass whose fields are read-only for the type checker, compared
    and hashed by their values."""
    made = dataclass(eq=False, repr=False)(cls)
    _share_methods(made, hashable=True)
    return made


@dataclass_transform()
def mutable_dataclass(cls: type[T]) -> type[T]:
    """Make `cls` a dataclass whose fields may change: as ``@dataclass`` (compared by its
    fields, unhashable), with the shared ``__eq__`` and ``__repr__``."""
    made = dataclass(eq=False, repr=False)(cls)
    _share_methods(made, hashable=False)
    return made
