"""``fap doctor``: one line per check of this desktop's set-up, each with what to do about it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import (
    JsonOption,
    OrgOption,
    ServerOption,
    TokenOption,
    VerboseOption,
    run,
    setup_logging,
)

if TYPE_CHECKING:
    from fap.client.doctor import Check

__all__ = ("doctor",)

ResultsOption = Annotated[
    Path,
    typer.Option(
        "--results",
        metavar="DIR",
        envvar="FAP_RESULTS",
        help="The results directory whose free space to check.",
    ),
]
DoctorRetryOption = Annotated[
    float,
    typer.Option(
        "--retry-for",
        metavar="SECONDS",
        min=0,
        help="Seconds to keep trying a server that does not answer before calling it unreachable.",
    ),
]

_STYLES = {"ok": "green", "warning": "yellow", "failed": "bold red", "skipped": "dim"}


def doctor(
    server: ServerOption = None,
    org: OrgOption = None,
    results: ResultsOption = Path("results"),
    json_output: JsonOption = False,
    retry_for: DoctorRetryOption = 5.0,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Check that this desktop is ready: the config file, the server and its API version, the
    token and its role, this device's key, the clock against the server's, the OS keyring, the
    disk space for results and the watcher services.

    One line per check: ok, warning (fap works, with a caveat) or failed, with what to do; a
    check that needs one that failed is skipped. Exits 0 when nothing failed, else with the exit
    code of the first failure. Changes nothing.
    """
    from fap.client import diagnose, exit_code_for

    setup_logging(verbose, client=True)
    checks = run(
        diagnose(server=server, token=token, org=org, results=results, retry_for=retry_for)
    )
    if json_output:
        _write_json(checks)
    elif sys.stdout.isatty():
        _write_rich(checks)
    else:
        _write_plain(checks)
    raise typer.Exit(exit_code_for(checks))


def _write_plain(checks: list[Check]) -> None:
    from fap.cli.listing import shown

    for check in checks:
        sys.stdout.write(f"{check.outcome:<8} {check.name:<11} {shown(check.detail)}\n")


def _write_rich(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.text import Text

    from fap.cli.listing import shown

    console = Console(highlight=False)
    for check in checks:
        # Text, not markup: a detail quotes paths and server answers as they are.
        line = Text()
        line.append(f"{check.outcome:<8}", style=_STYLES[check.outcome])
        line.append(f" {check.name:<11} ", style="bold")
        line.append(shown(check.detail))
        console.print(line)


def _write_json(checks: list[Check]) -> None:
    from fap.cli.listing import write_json

    write_json(
        {"check": check.name, "outcome": str(check.outcome), "detail": check.detail}
        for check in checks
    )
