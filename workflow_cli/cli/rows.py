"""Tables of rows: at a terminal a Rich table whose id columns are never cut (other
columns wrap first); elsewhere plain tab-separated rows under a header, whole values,
one row a line (what ``cut``, ``awk`` and ``sort`` expect)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from workflow_cli.readonly import readonly_dataclass


@readonly_dataclass
class Column:
    name: str
    whole: bool = False  # an id: never cut nor wrapped
    style: str = ""
    drop: int = 0  # when the terminal is too narrow, higher numbers are dropped first (0: never)


def plain_value(value: object) -> str:
    """A value for a tab-separated row: tabs and line breaks become spaces."""
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def print_rows(
    columns: Sequence[Column],
    rows: Sequence[Sequence[object]],
    *,
    markup: Sequence[Sequence[str]] | None = None,
    terminal: bool | None = None,
) -> None:
    """Print `rows` under `columns`. `markup` (same shape as rows) is what a terminal
    shows instead of the plain value, as Rich markup (e.g. a state in its colour)."""
    if terminal is None:
        terminal = sys.stdout.isatty()
    if not terminal:
        lines = ["\t".join(c.name.upper() for c in columns)]
        lines += ["\t".join(plain_value(v) for v in row) for row in rows]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    kept = _columns_that_fit(columns, rows, console.width)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for index, column in enumerate(columns):
        if index not in kept:
            continue
        if column.whole:
            longest = max([len(plain_value(r[index])) for r in rows] + [len(column.name)])
            table.add_column(column.name, no_wrap=True, min_width=longest, style=column.style)
        else:
            table.add_column(column.name, overflow="fold", style=column.style)
    for number, row in enumerate(rows):
        shown = markup[number] if markup is not None else None
        table.add_row(
            *(
                shown[i] if shown is not None and shown[i] else escape(plain_value(value))
                for i, value in enumerate(row)
                if i in kept
            )
        )
    console.print(table)


def _columns_that_fit(
    columns: Sequence[Column], rows: Sequence[Sequence[object]], width: int
) -> set[int]:
    """The columns shown in `width`: the droppable ones go, highest `drop` first, until
    the rest fit at their natural widths (what still does not fit wraps)."""
    natural = [
        max([len(plain_value(row[i])) for row in rows] + [len(column.name)])
        for i, column in enumerate(columns)
    ]
    kept = set(range(len(columns)))
    for index in sorted(
        (i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop
    ):
        if sum(natural[i] for i in kept) + 2 * (len(kept) - 1) <= width:
            break
        kept.discard(index)
    return kept
