"""The ``fap`` command: one Typer app, one module per command group.

Command modules stay thin and import the role they drive inside the command, so ``fap --help`` and
every command start fast.
"""

from __future__ import annotations

import typer

from fap import __version__
from fap.cli import engine, keys, results, serve, status, upload, watch, work
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
app.command("upload")(upload.upload)
app.command("watch")(watch.watch)
app.command("status")(status.status)
app.add_typer(results.app, name="results")
app.add_typer(keys.app, name="keys")
app.command("engine")(engine.engine)
app.command("work")(work.work)
app.command()(up_command.up)
app.command("serve")(serve.serve)


def main() -> None:
    app()
