"""What every command shares: options, the error edge, running a coroutine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from fap.errors import EXIT_INTERRUPTED, FapError
from fap.logs import configure

__all__ = (
    "JsonOption",
    "OrgOption",
    "QuietOption",
    "RetryForOption",
    "ServerOption",
    "TokenOption",
    "VerboseOption",
    "die",
    "err_console",
    "run",
    "setup_logging",
)

T = TypeVar("T")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        envvar="FAP_SERVER",
        help="The fap server's URL, or its replicas' URLs comma-separated, tried in turn when "
        "one does not answer (default: the server last used).",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        envvar="FAP_TOKEN",
        help="API token (default: FAP_TOKEN, else the token kept in the OS keyring).",
        show_default=False,
        hidden=True,
    ),
]
RetryForOption = Annotated[
    float | None,
    typer.Option(
        "--retry-for",
        metavar="SECONDS",
        envvar="FAP_RETRY_FOR",
        min=0,
        # No default here: the config file's client.retry_for, else the settings' 30 s.
        help="Seconds to keep retrying a server that does not answer before giving up "
        "(default: 30).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output: JSON lines.")]
OrgOption = Annotated[
    str | None,
    typer.Option(
        "--org",
        metavar="NAME",
        envvar="FAP_ORG",
        help="The organisation to act in (default: your only one).",
        show_default=False,
    ),
]


def die(error: FapError) -> NoReturn:
    """The CLI's only exit for a failure: one sentence on stderr, the error's exit code."""
    # The sentence is text, not markup: a message may quote "[/PREFIX]" or a user's file name.
    err_console.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, highlight=False)
    raise typer.Exit(error.exit_code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; FapError and Ctrl-C end in one line and an exit code."""
    try:
        return asyncio.run(coro)
    except FapError as error:
        die(error)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def setup_logging(verbose: bool = False, quiet: bool = False, *, client: bool = False) -> None:
    """INFO to stderr (a client's: warnings only); ``quiet`` keeps warnings, ``verbose`` adds debug.

    Whatever the level, no line holds a secret: ``fap.logs`` says how.
    """
    level = logging.WARNING if quiet or client else logging.INFO
    configure(level, verbose=verbose)


QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Log warnings and errors only.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")]
