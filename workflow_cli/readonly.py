"""`readonly_dataclass`: the dataclass of a value — its fields are read-only, and it is
compared and hashed by them.

Read-only is checked by the type checker (mypy rejects assigning a field), not at run
time: ``@dataclass(frozen=True)`` would check it at run time too, but makes Python
generate and compile a ``__setattr__`` and a ``__delattr__`` for every class, and an
``__init__`` that sets each field through ``object.__setattr__``, when its module is
imported: 8 % of the instructions of a whole one-task ``workflow_cli run`` (some sixty
classes on its path), and every instance slower to make. Use ``dataclasses.replace`` to
change a field, as with a frozen dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def readonly_dataclass(cls: type[T]) -> type[T]:
    """Make `cls` a dataclass whose fields are read-only for the type checker, compared
    and hashed by their values."""
    return dataclass(unsafe_hash=True)(cls)
