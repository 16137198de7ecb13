"""Identity and access over the API: who am I, organisations, members, tokens, devices, the audit
log. One function per call, each answering the :mod:`fap.api` message the server sends.

The organisation routes name the organisation in their path; :func:`resolve_org` finds it when the
user did not name one (``--org``): an API token's own, or a signed-in user's only one.
"""

from __future__ import annotations

from urllib.parse import quote

from fap.api import (
    AUDIT,
    DEVICE,
    DEVICES,
    INVITATIONS,
    MAX_LIST_LIMIT,
    ME,
    MEMBER,
    MEMBER_ROLE,
    MEMBERS,
    ORG,
    ORG_ACCESS,
    ORG_ENGINE,
    ORGS,
    TOKEN,
    TOKENS,
    ApiSession,
    AuditEntry,
    AuditList,
    DeviceInfo,
    DeviceList,
    EngineSetting,
    Invitation,
    InvitationInfo,
    Me,
    MemberInfo,
    MemberList,
    OrgAccessInfo,
    OrgCreate,
    OrgInfo,
    OrgList,
    Role,
    RoleChange,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    TokenList,
    TokenRole,
    role_named,
)
from fap.errors import AuthError, InputError

__all__ = (
    "audit_events",
    "change_role",
    "create_org",
    "create_token",
    "delete_org",
    "fetch_me",
    "get_org",
    "get_org_access",
    "invite_member",
    "list_devices",
    "list_members",
    "list_orgs",
    "list_tokens",
    "remove_member",
    "resolve_org",
    "revoke_device",
    "revoke_token",
    "role_arg",
    "set_org_access",
    "set_org_engine",
    "token_role_arg",
)


def role_arg(text: str) -> Role:
    """A role a user typed; an InputError sentence for any other word."""
    try:
        return role_named(text.strip().lower())
    except ValueError as error:
        raise InputError(str(error)) from None


def token_role_arg(text: str) -> TokenRole:
    """A token's role a user typed: a user role, or ``processor``."""
    if text.strip().lower() == "processor":
        return "processor"
    try:
        return role_named(text.strip().lower())
    except ValueError:
        raise InputError(
            f"{text!r} is no token role; a token is a viewer, member, admin, owner or processor."
        ) from None


def _segment(value: str) -> str:
    """A path segment: a user's text (an email may hold ``/`` or ``?``) goes in quoted."""
    return quote(value, safe="@")


async def fetch_me(session: ApiSession) -> Me:
    return await session.call("GET", ME, returns=Me)


async def resolve_org(session: ApiSession, named: str | None) -> str:
    """The organisation to act in: the one named, else the token's only one (asked of the server)."""
    if named is not None and named.strip():
        return named.strip()
    me = await fetch_me(session)
    if len(me.orgs) == 1:
        return me.orgs[0].org
    if not me.orgs:
        raise AuthError(
            "You belong to no organisation yet: create one (fap org create NAME) or ask an admin "
            "of one to invite you."
        )
    names = ", ".join(sorted(membership.org for membership in me.orgs))
    raise InputError(
        f"You belong to several organisations ({names}); name one with --org NAME (or FAP_ORG)."
    )


# -- organisations ----------------------------------------------------------------------------


async def list_orgs(session: ApiSession) -> list[OrgInfo]:
    return (await session.call("GET", ORGS, returns=OrgList)).orgs


async def create_org(session: ApiSession, name: str) -> OrgInfo:
    return await session.call("POST", ORGS, OrgCreate(name=name), returns=OrgInfo)


async def get_org(session: ApiSession, org: str) -> OrgInfo:
    return await session.call("GET", ORG.format(org=_segment(org)), returns=OrgInfo)


async def delete_org(session: ApiSession, org: str) -> None:
    await session.call("DELETE", ORG.format(org=_segment(org)))


async def get_org_access(session: ApiSession, org: str) -> OrgAccessInfo:
    return await session.call("GET", ORG_ACCESS.format(org=_segment(org)), returns=OrgAccessInfo)


async def set_org_access(session: ApiSession, org: str, access: OrgAccessInfo) -> OrgAccessInfo:
    """Replace who may join by signing in; answers what the server keeps (normalised)."""
    path = ORG_ACCESS.format(org=_segment(org))
    return await session.call("PUT", path, access, returns=OrgAccessInfo)


async def set_org_engine(session: ApiSession, org: str, engine: str) -> OrgInfo:
    """Pin the engine (NAME@VERSION) the organisation's uploads use when they name none (admins);
    answers the organisation as it is now."""
    path = ORG_ENGINE.format(org=_segment(org))
    return await session.call("PUT", path, EngineSetting(engine=engine), returns=OrgInfo)


async def audit_events(session: ApiSession, org: str, *, limit: int = 100) -> list[AuditEntry]:
    """The organisation's ``limit`` newest audit events, newest first."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InputError(f"The limit must be between 1 and {MAX_LIST_LIMIT}; {limit} is not.")
    path = AUDIT.format(org=_segment(org))
    return (await session.call("GET", path, params={"limit": limit}, returns=AuditList)).events


# -- members ----------------------------------------------------------------------------------


async def list_members(session: ApiSession, org: str) -> MemberList:
    return await session.call("GET", MEMBERS.format(org=_segment(org)), returns=MemberList)


async def invite_member(session: ApiSession, org: str, email: str, role: Role) -> InvitationInfo:
    path = INVITATIONS.format(org=_segment(org))
    return await session.call(
        "POST", path, Invitation(email=email, role=role), returns=InvitationInfo
    )


async def change_role(session: ApiSession, org: str, member: str, role: Role) -> MemberInfo:
    """``member``: a user id or an email."""
    path = MEMBER_ROLE.format(org=_segment(org), member=_segment(member))
    return await session.call("PUT", path, RoleChange(role=role), returns=MemberInfo)


async def remove_member(session: ApiSession, org: str, member: str) -> None:
    await session.call("DELETE", MEMBER.format(org=_segment(org), member=_segment(member)))


# -- tokens -----------------------------------------------------------------------------------


async def create_token(session: ApiSession, org: str, request: TokenCreate) -> TokenCreated:
    """A new token; its text is in the answer alone, this once."""
    path = TOKENS.format(org=_segment(org))
    return await session.call("POST", path, request, returns=TokenCreated)


async def list_tokens(session: ApiSession, org: str) -> list[TokenInfo]:
    return (await session.call("GET", TOKENS.format(org=_segment(org)), returns=TokenList)).tokens


async def revoke_token(session: ApiSession, org: str, token_id: str) -> None:
    await session.call("DELETE", TOKEN.format(org=_segment(org), token_id=_segment(token_id)))


# -- devices ----------------------------------------------------------------------------------


async def list_devices(session: ApiSession) -> list[DeviceInfo]:
    return (await session.call("GET", DEVICES, returns=DeviceList)).devices


async def revoke_device(session: ApiSession, device_id: str) -> None:
    await session.call("DELETE", DEVICE.format(device_id=_segment(device_id)))
