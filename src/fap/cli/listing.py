"""How the access commands print what the server answers, the way ``fap results list`` does.

``--json``: JSON lines, one object per line (a list) or one object. Off a terminal: plain lines,
tab-separated fields, one row per line. On a terminal: a rich table. Names, emails and every other
user-controlled text are printed as written, never read as rich markup, and their control
characters are shown escaped: a name holding a newline or an escape sequence can neither break a
row into two nor repaint the terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ("Row", "say", "shown", "when", "write_fields", "write_json", "write_rows")

# One row of a listing: its cells in column order.
Row = Sequence[str]

_MISSING = "-"


def shown(text: str | None) -> str:
    """User text for one cell or one line: control characters escaped, ``-`` for none."""
    if text is None or text == "":
        return _MISSING
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def when(timestamp: float | None, missing: str = _MISSING) -> str:
    if timestamp is None:
        return missing
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def write_json(items: Iterable[Any]) -> None:
    """One JSON object per line: msgspec structs, or dicts of plain values."""
    import msgspec

    for item in items:
        sys.stdout.write(msgspec.json.encode(item).decode() + "\n")


def write_rows(title: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """A table on a terminal, else one tab-separated line per row (no header: like ``ls``)."""
    if sys.stdout.isatty():
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left")
        for number, column in enumerate(columns):
            # The first column is an id or a name, what other commands take: never cut.
            table.add_column(column, no_wrap=number == 0, overflow="fold")
        for row in rows:
            # Text, not str: a str cell is read as markup, and "[red]x" would change colour.
            table.add_row(*(Text(shown(cell)) for cell in row))
        _console().print(table)
    else:
        for row in rows:
            sys.stdout.write("\t".join(shown(cell) for cell in row) + "\n")


def write_fields(title: str, fields: Sequence[tuple[str, str]]) -> None:
    """One object's fields: ``name: value`` lines, or a two-column table on a terminal."""
    if sys.stdout.isatty():
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column("field", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for name, value in fields:
            table.add_row(name, Text(shown(value)))
        _console().print(table)
    else:
        for name, value in fields:
            sys.stdout.write(f"{name}: {shown(value)}\n")


def say(sentence: str) -> None:
    """A confirmation on stdout, as written (it may quote a user's text)."""
    sys.stdout.write(sentence + "\n")


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)
