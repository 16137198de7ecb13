"""``fap retry [FILE…]``: send again the files a watcher got no result for."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import JsonOption, err_console, run
from fap.cli.listing import say, shown, write_json

if TYPE_CHECKING:
    from fap.client import Retried

__all__ = ("retry",)


def retry(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="FILE...",
            help="Failed files to send again (default: every failed file the watchers "
            "journaled, or those below --dir).",
            show_default=False,
        ),
    ] = None,
    directory: Annotated[
        list[Path] | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Send again every failed file below this watched directory (repeatable).",
            show_default=False,
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            envvar="FAP_SERVER",
            help="Only the files journaled for this server (default: every server's).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Send failed files again, as new uploads.

    A watcher of their directory that is running sends them within seconds; else the next fap
    watch of it (or fap watch --once) does. A file that has not failed is left as it is, and
    said so; a file no watcher has journaled is an error (exit 3), and nothing is changed.
    """
    from fap.client import retry_failed

    outcomes = run(retry_failed(files or [], directory or [], server=server))
    if json_output:
        write_json(
            {
                "file": outcome.path,
                "retried": outcome.retried,
                "state": outcome.state,
                "watcher_pid": outcome.watcher.pid if outcome.watcher else None,
            }
            for outcome in outcomes
        )
        return
    if not outcomes:
        err_console.print("No failed file to send again.", markup=False, highlight=False)
    for outcome in outcomes:
        say(_line(outcome))


def _line(outcome: Retried) -> str:
    from fap.cli.watch_status import STATES

    file = shown(outcome.path)
    if not outcome.retried:
        return f"{file}: {STATES[outcome.state]}, not failed: left as it is"
    if outcome.watcher is not None:
        return f"{file}: sent again by the running watcher (process {outcome.watcher.pid})"
    return f"{file}: to be sent again by the next fap watch of its directory"
