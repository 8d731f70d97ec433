"""How the commands write numbers and tables for people: run lengths, seconds,
percentages, counts, and aligned plain-text tables."""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Sequence

import attrs

__all__ = [
    "WIDTH",
    "Table",
    "clock",
    "count",
    "fit_table",
    "num",
    "number",
    "pct",
    "plain_table",
    "secs",
    "span",
    "wrap",
]

#: Columns everything the commands print fits in: a standard terminal.
WIDTH = 80


def span(seconds: float) -> str:
    """A run length for people: ``90 s``, ``10 min``, ``1 h 30 min``."""
    if seconds < 120 or seconds % 60:
        return f"{seconds:g} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def num(value: float) -> str:
    """A number of seconds without a needless ``.0``: ``300``, ``302.5``."""
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def clock(seconds: float) -> str:
    """Minutes and seconds: ``12:05``."""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:d}:{rest:02d}"


def secs(value: float | None) -> str:
    """A duration with the digits that matter: ``0.250 s``, ``12.5 s``, ``300 s``; ``-``
    for none."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.3f} s"
    if value < 100:
        return f"{value:.1f} s"
    return f"{value:.0f} s"


def pct(value: float | None, digits: int = 2) -> str:
    """A share as a percentage with *digits* decimals; ``-`` for none."""
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def count(amount: int, noun: str, plural: str = "") -> str:
    """``1 fault``, ``2 faults``; *plural* where adding ``s`` is wrong."""
    return f"{number(amount)} {noun if amount == 1 else plural or noun + 's'}"


def number(value: int) -> str:
    """A count with thousands separated: ``179,781``."""
    return f"{value:,}"


@attrs.frozen
class Table:
    """A table to print, whatever draws it (plain text, or rich on a terminal).

    Attributes:
      title: the line above it.
      columns: the column headings.
      rows: the cells, row by row.
      text_columns: how many leading columns hold text (aligned left); the rest are
        numbers (aligned right).
      note: a line under the table saying how to read it.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    text_columns: int = 1
    note: str = ""


def plain_table(table: Table) -> list[str]:
    """*table* as lines of plain text: the title, then aligned columns, then the note."""
    widths = [
        max(len(cell) for cell in column) for column in zip(table.columns, *table.rows, strict=True)
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if i < table.text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(parts)).rstrip()

    lines = [table.title, line(table.columns), *(line(row) for row in table.rows)]
    return [*lines, f"  {table.note}"] if table.note else lines


def fit_table(table: Table, width: int = WIDTH) -> list[str]:
    """*table* as lines no wider than *width*: aligned columns when they fit, else each
    row stacked as ``heading: value`` pairs under its first cell, wrapped to fit."""
    lines = plain_table(table)
    if all(len(line) <= width for line in lines):
        return lines
    out = [table.title]
    for row in table.rows:
        out.append(f"  {row[0]}")
        pairs = ", ".join(
            f"{heading} {cell}" for heading, cell in zip(table.columns[1:], row[1:], strict=True)
        )
        out += textwrap.wrap(pairs, width=width, initial_indent="    ", subsequent_indent="    ")
    if table.note:
        out += textwrap.wrap(table.note, width=width, initial_indent="  ", subsequent_indent="  ")
    return out


def wrap(text: str, indent: str = "", width: int = WIDTH, first: str | None = None) -> list[str]:
    """*text* wrapped to *width*, every line after the first indented by *indent* (the
    first by *first*, default *indent*), never breaking between a number and its unit."""
    glued = _NUMBER_UNIT.sub(rf"\1{_GLUE}\2", text)
    lines = textwrap.wrap(
        glued,
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    )
    return [line.replace(_GLUE, " ") for line in lines] or [indent.rstrip()]


def command(words: Sequence[str], indent: str = "", width: int = WIDTH) -> list[str]:
    """The shell command *words*, quoted, as lines of at most *width* columns where the
    words allow: a line that would pass *width* ends in `` \\`` and the command goes on
    under it, indented two more columns, so the lines still paste into a shell as one
    command. A single word longer than the line (a very long path) gets a line of its own."""
    lines: list[str] = []
    line = indent
    for word in map(shlex.quote, words):
        if line.strip() and len(line) + 1 + len(word) + 2 > width:
            lines.append(line + " \\")
            line = indent + "  " + word
        else:
            line = f"{line} {word}" if line.strip() else indent + word
    return [*lines, line]


#: A number and its unit, kept on one line by joining them with a character that is
#: not a space while wrapping.
_NUMBER_UNIT = re.compile(r"(\d) (s|min|h|points|requests)\b")
_GLUE = "\x00"
