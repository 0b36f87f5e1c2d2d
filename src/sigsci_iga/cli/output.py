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
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from sigsci_iga.domain.text import HIDDEN
from sigsci_iga.errors import SigsciIgaError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table
    from rich.text import Text

# Rich is imported by the functions that draw, not with this module: `--help` and `--version`
# print through Typer alone, and start faster without it.

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


def _console(*, err: bool = False, width: int | None = None) -> Console:
    from rich.console import Console  # noqa: PLC0415

    return Console(
        stderr=err, highlight=False, soft_wrap=True, markup=False, emoji=False, width=width
    )


def stderr() -> Console:
    """Standard error, for progress bars (they render our own stage names only)."""
    return _console(err=True)


class Stages:
    """Progress of long work on standard error, stage by stage.

    On a terminal, a bar per stage (erased when the work ends). Elsewhere (a log, a pipe, CI),
    one line per stage, printed when the next stage starts or the work ends; a stage that an
    error cut short prints nothing, so the error line follows the stages that finished.
    `describe(stage, done, total)` words a line; the stage names are our own.
    """

    def __init__(self, describe: Callable[[str, int, int | None], str]) -> None:
        self._describe = describe
        self._console = stderr()
        self._bars: Progress | None = None
        self._ids: dict[str, TaskID] = {}
        self._pending: tuple[str, int, int | None] | None = None

    def __enter__(self) -> Stages:
        if self._console.is_terminal:
            # Loaded only here: `--help` and work off a terminal do without it.
            from rich.progress import (  # noqa: PLC0415
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bars = Progress(
                TextColumn("{task.description:<16}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            self._bars.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self._bars is not None:
            self._bars.__exit__(kind, None, None)
        elif kind is None:
            self._flush()

    def report(self, stage: str, done: int, total: int | None) -> None:
        """The work in `stage` has reached `done` of `total` (None: not known yet)."""
        if self._bars is not None:
            if stage not in self._ids:
                self._ids[stage] = self._bars.add_task(visible(stage), total=total)
            self._bars.update(self._ids[stage], completed=done, total=total)
            return
        if self._pending is not None and self._pending[0] != stage:
            self._flush()
        self._pending = (stage, done, total)

    def _flush(self) -> None:
        if self._pending is not None:
            self._console.print(line(self._describe(*self._pending)))
            self._pending = None


def styled(value: object, style: str) -> Text:
    """A piece of a line in a style; the text itself is shown as it is."""
    from rich.text import Text  # noqa: PLC0415

    return Text(visible(value), style=style)


def line(*parts: object) -> Text:
    """One line from pieces: `styled(...)` pieces keep their style, the rest is plain text."""
    from rich.text import Text  # noqa: PLC0415

    return Text.assemble(*(p if isinstance(p, Text) else visible(p) for p in parts))


def stacked(values: Iterable[object]) -> Text:
    """A table cell with one value a line (each shown as text, its own newlines spelled out)."""
    from rich.text import Text  # noqa: PLC0415

    return Text("\n").join(Text(visible(value)) for value in values)


def plain(value: object, *, nested: bool = False) -> str:
    """A stored value as a person reads it: no Python reprs, no JSON brackets and quotes.

    A mapping reads `key: value; key: value`, one inside another in parentheses.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        inner = "; ".join(f"{key}: {plain(item, nested=True)}" for key, item in value.items())
        return f"({inner})" if nested and inner else inner or "-"
    if isinstance(value, list | tuple):
        return ", ".join(plain(item, nested=True) for item in value) or "-"
    return str(value)


def change(old: object, new: object) -> str:
    """A recorded change as `old → new`."""
    return f"{plain(old)} → {plain(new)}"


def say(*parts: object) -> None:
    """Print one line on standard output."""
    if not any(hasattr(part, "__rich_console__") for part in parts):
        # Unstyled: the same characters Rich would print, without loading Rich for them.
        sys.stdout.write("".join(visible(part) for part in parts) + "\n")
        return
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
    #: Every line of a cell kept on one line and never cut: other columns wrap first. None:
    #: whole when no cell has a space (an email, an id, a state), else wrapped at spaces.
    whole: bool | None = None
    #: Left out when the table cannot fit even wrapped, the highest first; 0: always shown.
    drop: int = 0


#: A cell line longer than this wraps even without spaces (a URL, an error code soup).
_LONGEST_WHOLE = 60
#: A wrapped column is not squeezed below this many characters (or its longest word).
_NARROWEST_WRAP = 12


def _lines(cell: Text) -> list[str]:
    return cell.plain.split("\n")


def _is_whole(col: Col, cells: Sequence[Text]) -> bool:
    from rich.cells import cell_len  # noqa: PLC0415

    if col.whole is not None:
        return col.whole
    lines = [piece for cell in cells for piece in _lines(cell)]
    return all(" " not in piece and cell_len(piece) <= _LONGEST_WHOLE for piece in lines)


def _narrowest(header: str, cells: Sequence[Text], whole: bool) -> int:
    """The fewest characters a column's content needs: its widest line, or a short wrap."""
    from rich.cells import cell_len  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    if whole:
        return max(cell_len(piece) for cell in [Text(header), *cells] for piece in _lines(cell))
    words = [w for cell in [Text(header), *cells] for w in cell.plain.split()]
    return min(_NARROWEST_WRAP, max((cell_len(w) for w in words), default=1))


def _table(
    columns: Sequence[Col],
    rows: Sequence[Sequence[Text]],
    title: object,
    whole: Sequence[bool],
    narrowest: Sequence[int],
) -> Table:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=None if title is None else line(title))
    for col, keep, least in zip(columns, whole, narrowest, strict=True):
        # fold, not ellipsis: a long word wraps onto the next line, so no value is ever cut.
        table.add_column(col.header, no_wrap=keep, overflow="fold", min_width=least)
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
    from rich.text import Text  # noqa: PLC0415

    cols = [c if isinstance(c, Col) else Col(c) for c in columns]
    cells = [
        [cell if isinstance(cell, Text) else Text(visible(cell)) for cell in row] for row in rows
    ]
    out = _console()
    whole = [_is_whole(col, [row[i] for row in cells]) for i, col in enumerate(cols)]
    narrowest = [
        _narrowest(col.header, [row[i] for row in cells], whole[i]) for i, col in enumerate(cols)
    ]
    shown = list(range(len(cols)))

    def needed() -> int:
        # Each column's content plus its padding (2) and its border (1), plus the last border.
        return sum(narrowest[i] + 3 for i in shown) + 1

    while needed() > out.width and any(cols[i].drop for i in shown):
        shown.remove(max((i for i in shown if cols[i].drop), key=lambda i: (cols[i].drop, i)))
    table = _table(
        [cols[i] for i in shown],
        [[r[i] for i in shown] for r in cells],
        title,
        [whole[i] for i in shown],
        [narrowest[i] for i in shown],
    )
    if needed() > out.width:
        # A whole-line column is never cut: rather a table wider than the terminal.
        out = _console(width=needed())
    out.print(table)
    hidden = [cols[i].header for i in range(len(cols)) if i not in shown]
    if hidden:
        out.print(line(styled(f"(not shown at this width: {', '.join(hidden)})", "dim")))


def print_json(value: Any) -> None:
    """One JSON document on standard output, nothing else (for scripts and jq).

    ASCII only: every control and non-ASCII character is a JSON escape, so the document is
    exact and cannot drive the terminal.
    """
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def print_json_array(items: Iterable[Any]) -> None:
    """One JSON array on standard output, written item by item as `items` yields them.

    The same text `print_json` would write for the list, but the first item is out before the
    last is read, and the whole list is never held as one string.
    """
    # Loaded by the listings that stream, not by `--help`.
    import msgspec  # noqa: PLC0415

    out = sys.stdout
    first = True
    for item in items:
        # `json.dumps` with an indent runs its pure-Python encoder (two thirds of a 50,000
        # account listing); the C encoder's compact text laid out by msgspec is the same text.
        text = msgspec.json.format(json.dumps(item, default=str), indent=2)
        # A JSON string holds no raw newline, so every line break here is the layout's own.
        out.write(("[\n  " if first else ",\n  ") + text.replace("\n", "\n  "))
        if first:
            out.flush()
        first = False
    out.write("[]\n" if first else "\n]\n")


def print_json_pages(pages: Iterable[Sequence[Any]]) -> None:
    """One JSON array on standard output, written a page of items at a time.

    The same text `print_json` would write for all the items in one list: each page is
    encoded by the C encoder and laid out by msgspec in one call each, and the first page is
    out before the next is read.
    """
    # Loaded by the listings that stream, not by `--help`.
    import msgspec  # noqa: PLC0415

    out = sys.stdout
    first = True
    for page in pages:
        if not page:
            continue
        # `[\n  {...},\n  {...}\n]`: the items' lines, without the brackets' own lines, are
        # the lines the whole list's layout holds for them.
        text = msgspec.json.format(json.dumps(page, default=str), indent=2)[2:-2]
        out.write(("[\n" if first else ",\n") + text)
        if first:
            out.flush()
        first = False
    out.write("[]\n" if first else "\n]\n")


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


def print_traceback(error: BaseException) -> None:
    """The traceback of an error on standard error (`--debug`), every line shown as text."""
    err = _console(err=True)
    for each in "".join(traceback.format_exception(error)).splitlines():
        err.print(line(each))


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
