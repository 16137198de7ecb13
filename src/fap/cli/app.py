"""The ``fap`` command: one Typer app, one module per command group.

Command modules stay thin and import the role they drive inside the command, so ``fap --help`` and
every command start fast.
"""

from __future__ import annotations

import typer

from fap import __version__
from fap.cli import up as up_command

app = typer.Typer(
    name="fap",
    help="File Analysis Pipeline: upload files for analysis, get results sealed for you alone.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """File Analysis Pipeline."""


# Each command group registers itself here, one line per module.
app.command()(up_command.up)


def main() -> None:
    app()
