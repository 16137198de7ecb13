"""``fap service``: ``fap watch DIR`` as a per-user service from login, one per watched folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from fap.cli.common import JsonOption, ServerOption, die
from fap.cli.listing import say, write_json, write_rows
from fap.cli.upload import EngineOption, ResultsOption, warn
from fap.errors import EXIT_INTERRUPTED, FapError

__all__ = ("app",)

app = typer.Typer(
    name="service",
    help="Run fap watch from login as a per-user service, one per watched folder: a systemd "
    "user unit on Linux, a launchd agent on macOS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

_PLATFORMS = ("linux", "macos")  # fap.client.service.PLATFORMS, without importing the client


def _check_platform(value: str | None) -> str | None:
    if value is not None and value not in _PLATFORMS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(_PLATFORMS)}.")
    return value


PlatformOption = Annotated[
    str | None,
    typer.Option(
        "--platform",
        metavar="NAME",
        hidden=True,
        help="linux or macos (default: this machine's).",
        show_default=False,
        callback=_check_platform,
    ),
]
TargetArgument = Annotated[
    str,
    typer.Argument(
        metavar="DIR|NAME",
        help="The watched directory, or the service's name as fap service list shows it.",
        show_default=False,
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        metavar="FILE",
        envvar="FAP_TOKEN_FILE",
        help="For a machine with no keyring: a file only you can read (chmod 600) holding an "
        "API token. The service is told where it is; the token is written nowhere.",
        show_default=False,
        dir_okay=False,
    ),
]


@app.command("install")
def install(
    directory: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="The directory to watch.", show_default=False),
    ],
    results: ResultsOption = Path("results"),
    server: ServerOption = None,
    engine: EngineOption = None,
    token_file: TokenFileOption = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the unit (on macOS: the plist); install nothing."),
    ] = False,
    platform: PlatformOption = None,
) -> None:
    """Install and start a service that runs fap watch DIR from login, restarted if it fails.

    It signs in as fap watch does, with the keyring (fap login), or with the file --token-file
    names; no token is written into the service's file. Installing a folder again replaces its
    service.
    """
    import os

    from fap.client.service import plan_service, service_manager

    try:
        manager = service_manager(platform)
        service = plan_service(
            directory,
            results=results,
            server=server,
            engine=engine,
            token_file=token_file,
            environ=os.environ,
            warn=warn,
        )
        if dry_run:
            sys.stdout.write(manager.render(service))
            return
        installed = manager.install(service)
    except FapError as error:
        die(error)
    say(f"installed {installed.name}: watching {service.directory}, results in {service.results}")


@app.command("uninstall")
def uninstall(target: TargetArgument, platform: PlatformOption = None) -> None:
    """Stop a folder's service and remove it (its results and journal stay)."""
    from fap.client.service import find_installed, service_manager

    try:
        manager = service_manager(platform)
        entry = find_installed(manager, target)
        manager.uninstall(entry)
    except FapError as error:
        die(error)
    say(f"removed {entry.name}")


@app.command("list")
def list_(json_output: JsonOption = False, platform: PlatformOption = None) -> None:
    """List the installed services: name, watched dir, results dir, server, state."""
    from fap.client.service import service_manager

    try:
        manager = service_manager(platform)
        entries = manager.installed()
        states = manager.states(entries)
    except FapError as error:
        die(error)
    rows = []
    for entry in entries:
        service = entry.service
        rows.append(
            {
                "name": entry.name,
                "directory": str(service.directory) if service else None,
                "results": str(service.results) if service else None,
                "server": service.server if service else None,
                "engine": service.engine if service else None,
                "state": states.get(entry.name),
                "file": str(entry.path),
            }
        )
    if json_output:
        write_json(rows)
        return
    columns = ("name", "directory", "results", "server", "state")
    write_rows(f"{len(rows)} services", columns, [[row[c] or "" for c in columns] for row in rows])


@app.command("status")
def status(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[DIR|NAME]",
            help="The watched directory or the service's name (default: every service).",
            show_default=False,
        ),
    ] = None,
    platform: PlatformOption = None,
) -> None:
    """Show what the service manager says of a service (systemctl status; launchd's state)."""
    from fap.client.service import find_installed, service_manager

    try:
        manager = service_manager(platform)
        entries = [find_installed(manager, target)] if target else manager.installed()
        if not entries:
            say("No fap service is installed.")
            return
        sys.stdout.write(manager.status(entries))
    except FapError as error:
        die(error)


@app.command("logs")
def logs(
    target: TargetArgument,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", metavar="N", min=0, help="How many past lines to show.")
    ] = 50,
    platform: PlatformOption = None,
) -> None:
    """Show a service's log (the journal on Linux, its log file on macOS)."""
    from fap.client.service import find_installed, service_manager

    try:
        manager = service_manager(platform)
        code = manager.logs(find_installed(manager, target), follow=follow, lines=lines)
    except FapError as error:
        die(error)
    except KeyboardInterrupt:  # how --follow ends
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if code:
        raise typer.Exit(code)
