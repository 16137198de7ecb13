"""Wire messages of identity and access: who am I, organisations, members, tokens, devices, the
audit log, and signing in."""

from __future__ import annotations

from typing import Any

import msgspec

from fap.api.messages import DeviceInfo, Struct
from fap.api.roles import Role, TokenRole

__all__ = (
    "AuditEntry",
    "AuditList",
    "DeviceList",
    "EngineSetting",
    "Invitation",
    "InvitationInfo",
    "Me",
    "MemberInfo",
    "MemberList",
    "Membership",
    "OrgAccessInfo",
    "OrgCreate",
    "OrgInfo",
    "OrgList",
    "Provider",
    "ProviderList",
    "Refresh",
    "RoleChange",
    "SessionTokens",
    "SignIn",
    "TokenCreate",
    "TokenCreated",
    "TokenInfo",
    "TokenList",
)


class Membership(Struct):
    org: str
    role: Role


class Me(Struct):
    """Who the token speaks for (``fap whoami``)."""

    user_id: str
    name: str
    email: str | None
    orgs: list[Membership]
    # "session" (signed in), "user" (an API token, acting in ``orgs[0]`` alone)
    token_kind: str


class OrgCreate(Struct):
    name: str


class OrgInfo(Struct):
    name: str
    role: Role  # the caller's
    plan: str | None
    default_engine: str
    max_file_size: int
    max_bytes_per_month: int | None
    max_concurrent_uploads: int | None
    created_at: float


class OrgList(Struct):
    orgs: list[OrgInfo]


class EngineSetting(Struct):
    """The engine (NAME@VERSION) an organisation's uploads use when they name none."""

    engine: str


class OrgAccessInfo(Struct):
    """Who may join by signing in: issuers trusted (none: every one the server trusts), and the
    email domains that join, with their role."""

    issuers: list[str] = msgspec.field(default_factory=list)
    domains: dict[str, Role] = msgspec.field(default_factory=dict)


class MemberInfo(Struct):
    user_id: str
    name: str
    email: str | None
    role: Role


class InvitationInfo(Struct):
    email: str
    role: Role
    created_at: float


class MemberList(Struct):
    members: list[MemberInfo]
    invitations: list[InvitationInfo]


class Invitation(Struct):
    email: str
    role: Role = "member"


class RoleChange(Struct):
    role: Role


class TokenCreate(Struct):
    name: str
    role: TokenRole  # a user role caps an API token of one's own; "processor" runs jobs
    expires_in: float | None = None  # seconds; None: until revoked


class TokenCreated(Struct):
    """The token's text, shown this once: the server keeps only its hash."""

    id: str
    token: str
    role: TokenRole
    expires_at: float | None


class TokenInfo(Struct):
    id: str
    name: str | None
    role: TokenRole  # processor, or the API token's cap (its user's role when it has none)
    user_id: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class TokenList(Struct):
    tokens: list[TokenInfo]


class AuditEntry(Struct):
    at: float
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    remote: str | None


class AuditList(Struct):
    events: list[AuditEntry]


class DeviceList(Struct):
    devices: list[DeviceInfo]


class Provider(Struct):
    """An identity provider the server trusts (listed publicly: ``fap login`` finds it there)."""

    issuer: str
    client_id: str
    kind: str  # "microsoft", "google" or "oidc" (generic, through its discovery document)


class ProviderList(Struct):
    providers: list[Provider]


class SignIn(Struct):
    id_token: str  # the identity provider's, for the client id the server lists


class Refresh(Struct):
    """A session renewed: its refresh token, and a fresh ID token of the same person from the
    identity provider, so a user the provider no longer vouches for cannot keep a session."""

    refresh_token: str
    id_token: str


class SessionTokens(Struct):
    """The server's own tokens for a sign-in: use ``access_token`` as the bearer until it
    expires, then exchange ``refresh_token`` (once) for the next pair."""

    access_token: str
    refresh_token: str
    expires_in: float  # seconds the access token lasts
    session_expires_at: float  # after this, sign in again
    user_id: str
    email: str | None
    joined: list[Membership] = msgspec.field(default_factory=list)  # by this sign-in
