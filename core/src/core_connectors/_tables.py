"""Tables for people (``core-connectors list``, the table ``serve`` prints at start): rich ones on a terminal when
rich is installed (``core-connectors[cli]``), aligned plain text otherwise (a pod's log, a pipe, a lean install).

rich is imported only to draw on a terminal: a service that logs to a file never loads it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Table", "print_tables"]


@dataclass
class Table:
    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    column_styles: Sequence[str | None] = ()
    title_style: str | None = None
    notes: list[tuple[str, str | None]] = field(default_factory=list)
    """Lines printed after the table, each with its rich style."""


def print_tables(tables: Sequence[Table], stream: TextIO | None = None) -> None:
    """Print ``tables``, each followed by its notes, on ``stream`` (stdout by default)."""
    stream = stream if stream is not None else sys.stdout
    console = _rich_console(stream)
    for table in tables:
        if console is not None:
            _print_rich(console, table)
        else:
            lines = _plain_lines(table) + [text for text, _ in table.notes]
            print("\n".join(lines), file=stream, flush=True)


def _rich_console(stream: TextIO) -> Any:
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):  # replaced or closed streams
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(file=stream)


def _print_rich(console: Any, table: Table) -> None:
    from rich.table import Table as RichTable

    drawn = RichTable(title=table.title, title_style=table.title_style)
    styles = list(table.column_styles) + [None] * (len(table.header) - len(table.column_styles))
    for column, style in zip(table.header, styles, strict=True):
        drawn.add_column(column, style=style)
    for row in table.rows:
        drawn.add_row(*row)
    console.print(drawn)
    for text, style in table.notes:
        console.print(text, style=style, markup=False)


def _plain_lines(table: Table) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(table.header, *table.rows, strict=True)]
    return [table.title] + [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [table.header, *table.rows]
    ]
