"""``fap user``: the members of an organisation — invite, list, change a role, remove."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from fap.cli.common import JsonOption, OrgOption, RetryForOption, ServerOption, TokenOption, die
from fap.cli.listing import say, shown, when, write_json, write_rows
from fap.cli.remote import Remote, call_in_org
from fap.errors import FapError

if TYPE_CHECKING:
    from fap.api import ApiSession, InvitationInfo, MemberInfo, Role

__all__ = ("app",)

app = typer.Typer(
    name="user",
    help="The members of an organisation, and invitations to it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

UserArgument = Annotated[
    str,
    typer.Argument(metavar="USER", help="The member's user id or email.", show_default=False),
]
RoleArgument = Annotated[
    str,
    typer.Argument(metavar="ROLE", help="viewer, member, admin or owner.", show_default=False),
]


@app.command("invite")
def invite(
    email: Annotated[
        str,
        typer.Argument(
            metavar="EMAIL",
            help="Whoever signs in with this email, verified by their identity provider, joins.",
            show_default=False,
        ),
    ],
    role: Annotated[
        str,
        typer.Option("--role", metavar="ROLE", help="Their role: viewer, member, admin or owner."),
    ] = "member",
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Invite someone by email: they join with the role when they first sign in."""
    from fap.client import invite_member

    wanted = _role(role)

    async def send(session: ApiSession, name: str) -> tuple[str, InvitationInfo]:
        return name, await invite_member(session, name, email, wanted)

    name, invitation = call_in_org(Remote(server, token, retry_for, org), send)
    if json_output:
        write_json([invitation])
    else:
        say(
            f"Invited {shown(invitation.email)} to {name} as {invitation.role}: they join when "
            "they sign in with that email."
        )


@app.command("list")
def list_(
    server: ServerOption = None,
    org: OrgOption = None,
    json_output: JsonOption = False,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """List the members (id, name, email, role) and the open invitations."""
    from fap.client import list_members

    found = call_in_org(Remote(server, token, retry_for, org), list_members)
    if json_output:
        # One kind of line per kind of entry, told apart by "status": "member" or "invited".
        write_json([_tagged(member, "member") for member in found.members])
        write_json([_tagged(invitation, "invited") for invitation in found.invitations])
        return
    rows = [_member_row(member) for member in found.members]
    rows += [_invitation_row(invitation) for invitation in found.invitations]
    title = f"{len(found.members)} members, {len(found.invitations)} invitations"
    write_rows(title, ("id", "name", "email", "role", "status"), rows)


@app.command("role")
def role(
    user: UserArgument,
    new_role: RoleArgument,
    server: ServerOption = None,
    org: OrgOption = None,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Give a member another role (only an owner makes, changes or removes an owner)."""
    from fap.client import change_role

    wanted = _role(new_role)

    async def change(session: ApiSession, name: str) -> tuple[str, MemberInfo]:
        return name, await change_role(session, name, user, wanted)

    name, member = call_in_org(Remote(server, token, retry_for, org), change)
    say(f"{shown(member.email or member.name)} is now {member.role} in {name}.")


@app.command("remove")
def remove(
    user: UserArgument,
    server: ServerOption = None,
    org: OrgOption = None,
    retry_for: RetryForOption = None,
    token: TokenOption = None,
) -> None:
    """Remove a member (or leave, naming yourself): their API tokens there are revoked at once."""
    from fap.client import remove_member

    async def drop(session: ApiSession, name: str) -> str:
        await remove_member(session, name, user)
        return name

    name = call_in_org(Remote(server, token, retry_for, org), drop)
    say(f"Removed {shown(user)} from {name}; their API tokens there no longer work.")


def _role(text: str) -> Role:
    from fap.client import role_arg

    try:
        return role_arg(text)
    except FapError as error:
        die(error)


def _tagged(entry: MemberInfo | InvitationInfo, status: str) -> dict[str, Any]:
    import msgspec

    encoded: dict[str, Any] = msgspec.to_builtins(entry)
    return {**encoded, "status": status}


def _member_row(member: MemberInfo) -> tuple[str, ...]:
    return (member.user_id, member.name, member.email or "", member.role, "member")


def _invitation_row(invitation: InvitationInfo) -> tuple[str, ...]:
    status = f"invited {when(invitation.created_at)}"
    return ("", "", invitation.email, invitation.role, status)
