"""Who is calling: the bearer token resolved to a user (with a role) or a processor of one
organisation, and the access each route demands.

Routes under ``/v1`` declare ``opt={"access": …}``; the guard resolves the token before the body is
even decoded, so a caller without a valid token learns nothing about the route, and a route that
forgets to declare its access still demands a user token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from fap.server.auth.tokens import hash_token, token_kind
from fap.server.errors import Forbidden, Unauthorized
from fap.server.store import Accounts, Org, User

# Guards and dependencies run for any route: its handler, user and state types are not known here.
_Connection = ASGIConnection[Any, Any, Any, Any]

__all__ = (
    "ACCESS",
    "UPLOAD_ROLES",
    "Access",
    "Caller",
    "Processor",
    "auth_guard",
    "caller",
    "processor",
)

# read: any user of the organisation; upload: a user who may add files; process: a processor.
Access = Literal["read", "upload", "process"]
ACCESS = "access"
UPLOAD_ROLES: frozenset[str] = frozenset({"owner", "admin", "member"})
_PRINCIPAL = "fap_principal"


@dataclass(frozen=True, slots=True)
class Caller:
    """A user token: its user, their organisation and role."""

    org: Org
    user: User

    @property
    def role(self) -> str:
        return self.user.role


@dataclass(frozen=True, slots=True)
class Processor:
    """A processor token: it may lease and complete the jobs of its organisation, nothing else."""

    org: Org


def auth_guard(accounts: Accounts) -> Guard:
    async def guard(connection: _Connection, handler: BaseRouteHandler) -> None:
        access: Access = handler.opt.get(ACCESS, "read")
        principal = await _authenticate(accounts, connection.headers.get("authorization"))
        if access == "process":
            if not isinstance(principal, Processor):
                raise Forbidden(
                    "Only processor tokens may lease and run jobs; this is a user token."
                )
        elif isinstance(principal, Processor):
            raise Forbidden("Processor tokens may only lease and complete jobs.")
        elif access == "upload" and principal.role not in UPLOAD_ROLES:
            raise Forbidden(
                f"Your role in {principal.org.name} is {principal.role}, which may only read; "
                "ask an admin for the member role to upload."
            )
        connection.state[_PRINCIPAL] = principal

    return guard


async def _authenticate(accounts: Accounts, header: str | None) -> Caller | Processor:
    if not header:
        raise Unauthorized("This route needs a token: send Authorization: Bearer TOKEN.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must read Bearer TOKEN.")
    if token_kind(token) is None:
        raise Unauthorized(
            "That is not a fap token; fap tokens start with fap_user_ or fap_processor_."
        )
    owner = await accounts.token_owner(hash_token(token))
    if owner is None:
        raise Unauthorized("The token is unknown or was revoked.")
    if owner.kind == "processor":
        return Processor(owner.org)
    assert owner.user is not None  # token_owner() answers a user for every user token
    return Caller(owner.org, owner.user)


async def caller(request: _Connection) -> Caller:
    """Dependency: the user the guard found (routes with access read or upload)."""
    principal = request.state.get(_PRINCIPAL)
    if not isinstance(principal, Caller):
        raise Forbidden("This route is for user tokens.")
    return principal


async def processor(request: _Connection) -> Processor:
    """Dependency: the processor the guard found (routes with access process)."""
    principal = request.state.get(_PRINCIPAL)
    if not isinstance(principal, Processor):
        raise Forbidden("Only processor tokens may lease and run jobs.")
    return principal
