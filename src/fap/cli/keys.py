"""``fap keys``: this device's age identity (``export``, for any standard age tool), and the
devices of yours that results are sealed to (``list``, ``revoke``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import (
    JsonOption,
    RetryForOption,
    ServerOption,
    TokenOption,
    die,
    err_console,
)
from fap.cli.listing import say, shown, when, write_json, write_rows
from fap.cli.remote import Remote, call
from fap.cli.upload import warn
from fap.errors import FapError

if TYPE_CHECKING:
    from fap.api import DeviceInfo

__all__ = ("app",)

app = typer.Typer(
    name="keys",
    help="This device's key, which opens its results, and your devices results are sealed to.",
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


@app.command("list")
def list_(
    server: ServerOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """List your devices: id, name, public key, registered, state (revoked ones get no results)."""
    from fap.client import list_devices

    devices = call(Remote(server, token, retry_for), list_devices)
    if json_output:
        write_json(devices)
        return
    write_rows(
        f"{len(devices)} devices",
        ("id", "name", "public key", "registered", "state"),
        [_row(device) for device in devices],
    )


@app.command("revoke")
def revoke(
    device_id: Annotated[
        str,
        typer.Argument(metavar="ID", help="The device's id (fap keys list).", show_default=False),
    ],
    server: ServerOption = None,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Revoke a device: no new result is sealed to its key (those it has stay readable by it)."""
    from fap.client import revoke_device

    call(Remote(server, token, retry_for), lambda session: revoke_device(session, device_id))
    say(f"Revoked device {shown(device_id)}: no new result is sealed to its key.")


def _row(device: DeviceInfo) -> tuple[str, ...]:
    state = "active" if device.revoked_at is None else f"revoked {when(device.revoked_at)}"
    return (device.id, device.name, device.recipient, when(device.created_at), state)
