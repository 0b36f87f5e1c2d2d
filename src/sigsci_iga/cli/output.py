"""Rendering for the CLI: the one place that writes to the terminal.

Text from servers, files and people (emails, names, site names, error messages, paths) is shown
as text: the consoles parse no Rich markup (`[red]`, `[/]`, `[link=...]`) and no emoji codes
(`:x:`), and `visible` spells out control characters, ANSI escapes and invisible or
direction-changing characters (`\\x1b`, `\\u202e`) so they cannot rewrite the screen or hide
what a value really is. Every command renders through the functions here.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from sigsci_iga.domain.text import HIDDEN
from sigsci_iga.errors import SigsciIgaError

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(value: object) -> str:
    """Outside text made safe to print: every control or invisible character spelled out."""
    text = "" if value is None else str(value)
    return HIDDEN.sub(_escape, text)


def _console(*, err: bool = False) -> Console:
    return Console(stderr=err, highlight=False, soft_wrap=True, markup=False, emoji=False)


def stderr() -> Console:
    """Standard error, for progress bars (they render our own stage names only)."""
    return _console(err=True)


def styled(value: object, style: str) -> Text:
    """A piece of a line in a style; the text itself is shown as it is."""
    return Text(visible(value), style=style)


def line(*parts: object) -> Text:
    """One line from pieces: `styled(...)` pieces keep their style, the rest is plain text."""
    return Text.assemble(*(p if isinstance(p, Text) else visible(p) for p in parts))


def say(*parts: object) -> None:
    """Print one line on standard output."""
    _console().print(line(*parts))


def say_block(text: str) -> None:
    """Print a multi-line text (a report, a YAML document) line by line."""
    out = _console()
    for each in text.splitlines():
        out.print(line(each))


@dataclass(frozen=True)
class Col:
    """A table column and how it gives way when the terminal is narrow."""

    header: str
    #: Every cell on one line and never cut (an email, an id): other columns wrap first.
    whole: bool = False
    #: Left out when the table cannot fit even wrapped, the highest first; 0: always shown.
    drop: int = 0


def _table(columns: Sequence[Col], rows: Sequence[Sequence[Text]], title: object) -> Table:
    table = Table(title=None if title is None else line(title))
    for col in columns:
        # fold, not ellipsis: a long word wraps onto the next line, so no value is ever cut.
        table.add_column(col.header, no_wrap=col.whole, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def show_table(
    columns: Sequence[str | Col], rows: Iterable[Sequence[object]], *, title: object = None
) -> None:
    """A table on standard output; every cell and the title are shown as text.

    It fits the terminal's width (`COLUMNS` off a terminal): columns wrap, then the columns
    marked `drop` are left out (a note names them), and a whole-line column that still does not
    fit makes the table wider than the terminal rather than cut.
    """
    cols = [c if isinstance(c, Col) else Col(c) for c in columns]
    cells = [
        [cell if isinstance(cell, Text) else Text(visible(cell)) for cell in row] for row in rows
    ]
    out = _console()
    shown = list(range(len(cols)))
    while True:
        table = _table([cols[i] for i in shown], [[r[i] for i in shown] for r in cells], title)
        needed = _minimum_width(out, table)
        droppable = [i for i in shown if cols[i].drop]
        if needed <= out.width or not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (cols[i].drop, i)))
    out.print(table, width=max(out.width, needed))
    hidden = [cols[i].header for i in range(len(cols)) if i not in shown]
    if hidden:
        out.print(line(styled(f"(not shown at this width: {', '.join(hidden)})", "dim")))


def _minimum_width(console: Console, table: Table) -> int:
    """The narrowest the table can be drawn without cutting a whole-line column."""
    options = console.options.update_width(1_000_000)
    return Measurement.get(console, options, table).minimum


def print_json(value: Any) -> None:
    """One JSON document on standard output, nothing else (for scripts and jq).

    ASCII only: every control and non-ASCII character is a JSON escape, so the document is
    exact and cannot drive the terminal.
    """
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: formula starts get a leading `'`."""
    text = "" if value is None else str(value)
    shown = visible(text)
    return "'" + shown if text.startswith(_FORMULA_START) else shown


def print_csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A CSV document on standard output, every cell escaped by `csv_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    sys.stdout.write(buffer.getvalue())


def fail(error: SigsciIgaError | str, *, code: int | None = None) -> NoReturn:
    """End the command with a one-line reason on standard error.

    An error that lists details on further lines (a package's problems) keeps them, indented,
    so that no line after the first can pass for an `error:` line of its own.
    """
    exit_code = (
        code if code is not None else (error.exit_code if isinstance(error, SigsciIgaError) else 1)
    )
    err = _console(err=True)
    first, *details = str(error).split("\n")
    err.print(line(styled("error: ", "bold red"), first))
    for detail in details:
        err.print(line("  ", detail))
    raise typer.Exit(exit_code)
