"""``fap keys export``: this device's age identity, for any standard age tool."""

from __future__ import annotations

import sys

import typer

from fap.cli.common import die, err_console
from fap.cli.upload import warn
from fap.errors import FapError

__all__ = ("app",)

app = typer.Typer(
    name="keys",
    help="This device's key, which opens its results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("export")
def export() -> None:
    """Print the device's age identity (AGE-SECRET-KEY-…), e.g. for `age -d -i`."""
    from fap.client import DeviceKeys
    from fap.config import ClientSettings, build

    try:
        identity = DeviceKeys(build(ClientSettings).home, warn).identity()
    except FapError as error:
        die(error)
    err_console.print(
        "[yellow]warning:[/] this is the device's secret key: anyone who holds it can read "
        "its results. Keep it out of logs and shared places.",
        markup=True,
        highlight=False,
    )
    sys.stdout.write(identity.secret + "\n")
