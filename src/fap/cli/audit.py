"""``fap audit list``: who changed an organisation's access, what, when and from where."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import JsonOption, OrgOption, RetryForOption, ServerOption, TokenOption
from fap.cli.listing import when, write_json, write_rows
from fap.cli.remote import Remote, call_in_org

if TYPE_CHECKING:
    from fap.api import ApiSession, AuditEntry

__all__ = ("app",)

app = typer.Typer(
    name="audit",
    help="The organisation's audit log (owners and admins).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("list")
def list_(
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, help="How many events to show.")
    ] = 100,
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """List the newest events first: time, who, action, target, details, from where."""
    from fap.client import audit_events

    async def read(session: ApiSession, name: str) -> list[AuditEntry]:
        return await audit_events(session, name, limit=limit)

    events = call_in_org(Remote(server, token, retry_for, org), read)
    if json_output:
        write_json(events)
        return
    write_rows(
        f"{len(events)} events",
        ("time", "actor", "action", "target", "details", "from"),
        [_row(event) for event in events],
    )


def _row(event: AuditEntry) -> tuple[str, ...]:
    import msgspec

    details = msgspec.json.encode(event.details).decode() if event.details else ""
    return (when(event.at), event.actor, event.action, event.target, details, event.remote or "")
