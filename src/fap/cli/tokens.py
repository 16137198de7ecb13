"""``fap token``: API tokens (for CI: yours, capped at a role) and processor tokens (for
``fap work``) — create one, list them, revoke one.

A token's text is shown once, when it is made: the server keeps only its hash. Plainly it is the
only line on stdout (``TOKEN=$(fap token create --role member)``), the note about it on stderr.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from fap.cli.common import (
    JsonOption,
    OrgOption,
    RetryForOption,
    ServerOption,
    TokenOption,
    die,
    err_console,
)
from fap.cli.listing import say, shown, when, write_json, write_rows
from fap.cli.remote import Remote, call_in_org
from fap.errors import FapError

if TYPE_CHECKING:
    from fap.api import ApiSession, TokenCreate, TokenCreated, TokenInfo

__all__ = ("app",)

app = typer.Typer(
    name="token",
    help="API tokens for CI, processor tokens for fap work.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("create")
def create(
    role: Annotated[
        str,
        typer.Option(
            "--role",
            metavar="ROLE",
            help="viewer, member, admin or owner: an API token of yours, capped at that role "
            "(and at yours); processor: a token for fap work (owners and admins only).",
            show_default=False,
        ),
    ],
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            metavar="DURATION",
            help="Its lifetime, such as 30d or 12h (default: until revoked).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="What it is for, shown by fap token list (default: its role and this host).",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Create a token and print it, this once: the server keeps only its hash."""
    from fap.client import create_token

    request = _request(role, expires, name)

    async def make(session: ApiSession, org_name: str) -> tuple[str, TokenCreated]:
        return org_name, await create_token(session, org_name, request)

    org_name, created = call_in_org(Remote(server, token, retry_for, org), make)
    if json_output:
        write_json([created])
        return
    typer.echo(created.token)
    expiry = (
        "never expires" if created.expires_at is None else f"expires {when(created.expires_at)}"
    )
    err_console.print(
        f"note: this {created.role} token of {org_name} (id {created.id}; {expiry}) is shown "
        "this once: keep it now, the server keeps only its hash.",
        markup=False,
    )


@app.command("list")
def list_(
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """List tokens (admins: all of the organisation's; others: their own), revoked ones too."""
    from fap.client import list_tokens

    tokens = call_in_org(Remote(server, token, retry_for, org), list_tokens)
    if json_output:
        write_json(tokens)
        return
    now = time.time()
    write_rows(
        f"{len(tokens)} tokens",
        ("id", "name", "role", "user", "created", "expires", "state"),
        [_row(found, now) for found in tokens],
    )


@app.command("revoke")
def revoke(
    token_id: Annotated[
        str,
        typer.Argument(metavar="ID", help="The token's id (fap token list).", show_default=False),
    ],
    server: ServerOption = None,
    org: OrgOption = None,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Revoke a token: it stops working at once."""
    from fap.client import revoke_token

    async def drop(session: ApiSession, org_name: str) -> str:
        await revoke_token(session, org_name, token_id)
        return org_name

    org_name = call_in_org(Remote(server, token, retry_for, org), drop)
    say(f"Revoked token {shown(token_id)} of {org_name}: it no longer works.")


def _request(role: str, expires: str | None, name: str | None) -> TokenCreate:
    import socket

    from fap.api import TokenCreate
    from fap.client import token_role_arg
    from fap.durations import parse_duration

    try:
        token_role = token_role_arg(role)
        seconds = None if expires is None else parse_duration(expires, "--expires")
    except FapError as error:
        die(error)
    label = name if name is not None else f"{token_role} token made on {socket.gethostname()}"
    return TokenCreate(name=label, role=token_role, expires_in=seconds)


def _row(info: TokenInfo, now: float) -> tuple[str, ...]:
    if info.revoked_at is not None:
        state = f"revoked {when(info.revoked_at)}"
    elif info.expires_at is not None and info.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    expires = when(info.expires_at, missing="never")
    return (
        info.id,
        info.name or "",
        info.role,
        info.user_id or "",
        when(info.created_at),
        expires,
        state,
    )
