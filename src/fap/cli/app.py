"""The ``fap`` command: one Typer app, one module per command group.

Command modules stay thin and import the role they drive inside the command, so ``fap --help`` and
every command start fast.
"""

from __future__ import annotations

import gc

import typer

from fap import __version__
from fap.cli import (
    audit,
    doctor,
    engine,
    keys,
    login,
    orgs,
    results,
    retry,
    serve,
    service,
    settings_cmd,
    status,
    tokens,
    up,
    upload,
    users,
    watch,
    work,
)

app = typer.Typer(
    name="fap",
    help="File Analysis Pipeline: upload files for analysis, get results sealed for you alone.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion, --show-completion: the shell is looked up only when one of them runs.
    add_completion=True,
    # Help is text, not rich markup: "s3://BUCKET[/PREFIX]" would read as a closing tag and crash
    # --help. Plain help also wraps paragraphs as written and reads like other command-line tools'.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        # Here, not at the top: the wire contract's imports would slow every command's start.
        from fap.api import API_VERSION

        typer.echo(f"fap {__version__} (API {API_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the version and the API version it speaks, and exit.",
    ),
) -> None:
    """File Analysis Pipeline."""


# Each command group registers itself here, one line per module, in the order --help shows.
app.command("up")(up.up)
app.command("upload")(upload.upload)
app.command("watch")(watch.watch)
app.command("retry")(retry.retry)
app.add_typer(service.app, name="service")
app.add_typer(results.app, name="results")
app.command("status")(status.status)
app.command("doctor")(doctor.doctor)
app.add_typer(keys.app, name="keys")
app.add_typer(settings_cmd.app, name="config")
app.command("login")(login.login)
app.command("logout")(login.logout)
app.command("whoami")(login.whoami)
app.add_typer(orgs.app, name="org")
app.add_typer(users.app, name="user")
app.add_typer(tokens.app, name="token")
app.add_typer(audit.app, name="audit")
app.command("serve")(serve.serve)
app.command("work")(work.work)
app.command("engine")(engine.engine)


def main() -> None:
    try:
        app()
    finally:
        # The interpreter's teardown collects garbage over every object a command loaded, more
        # than once: ~45 ms of every run, for objects that are all freed anyway. Frozen, they
        # are freed (and their files flushed) without the collector traversing them first.
        gc.freeze()
