"""Who is calling: the bearer token resolved to a user acting in an organisation with a role, a
user acting in none, or a processor of one organisation.

Routes under ``/v1`` declare the permission they need (``permissions.needs``); the guard resolves
the token before the body is even decoded, so a caller without a valid token learns nothing about
the route. The organisation a request acts in is the path's ``{org}``, else the ``Fap-Org``
header, else the user's only organisation. An API or processor token acts in its own organisation
alone; any other it names does not exist for it (404), as for a user who is no member of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from fap.api.paths import ORG_HEADER
from fap.api.roles import Role, role_named, weaker
from fap.server.auth.permissions import NEEDS, Permission, granted, weakest_role
from fap.server.auth.tokens import hash_token, token_kind
from fap.server.errors import BadRequest, Forbidden, NotFound, Unauthorized
from fap.server.store import Credential, Org, Store, User

# Guards and dependencies run for any route: its handler, user and state types are not known here.
_Connection = ASGIConnection[Any, Any, Any, Any]

__all__ = ("Caller", "Person", "Processor", "auth_guard", "caller", "person", "processor")

_PRINCIPAL = "fap_principal"


@dataclass(frozen=True, slots=True)
class Person:
    """A user acting in no organisation in particular (routes that need SIGNED_IN)."""

    user: User
    credential: Credential


@dataclass(frozen=True, slots=True)
class Caller:
    """A user acting in an organisation, with their role there (an API token's: capped)."""

    org: Org
    user: User
    role: Role
    credential: Credential


@dataclass(frozen=True, slots=True)
class Processor:
    """A processor token: it may lease and complete the jobs of its organisation, nothing else."""

    org: Org
    credential: Credential


def auth_guard(store: Store, clock: Callable[[], float]) -> Guard:
    async def guard(connection: _Connection, handler: BaseRouteHandler) -> None:
        permission: Permission = handler.opt.get(NEEDS, Permission.READ)
        credential = await _authenticate(store, connection.headers.get("authorization"), clock())
        connection.state[_PRINCIPAL] = await _principal(store, credential, permission, connection)

    return guard


async def _principal(
    store: Store, credential: Credential, permission: Permission, connection: _Connection
) -> Person | Caller | Processor:
    if credential.kind == "processor":
        if permission != Permission.PROCESS:
            raise Forbidden("Processor tokens may only lease and complete jobs.")
        assert credential.org is not None  # resolve() answers an organisation for these
        _check_named(connection, credential.org)
        return Processor(credential.org, credential)
    if permission == Permission.PROCESS:
        raise Forbidden("Only processor tokens may lease and run jobs; this is a user token.")
    user = credential.user
    assert user is not None  # every user and session token has its user
    if permission == Permission.SIGNED_IN:
        return Person(user, credential)
    org, role = await _org_and_role(store, credential, user, connection)
    if not granted(role, permission):
        needed = weakest_role(permission)
        raise Forbidden(
            f"Your role in {org.name} is {role}; this needs {needed} or above. Ask an owner or "
            "admin of the organisation."
        )
    return Caller(org, user, role, credential)


async def _org_and_role(
    store: Store, credential: Credential, user: User, connection: _Connection
) -> tuple[Org, Role]:
    named = _named_org(connection)
    if credential.org is not None:  # an API token: its organisation, its user's role, its cap
        _check_named(connection, credential.org)
        if credential.member_role is None:
            raise Unauthorized(
                f"The token's user is no longer a member of {credential.org.name}: it was revoked."
            )
        role = role_named(credential.member_role)
        cap = credential.role_cap
        return credential.org, role if cap is None else weaker(role, role_named(cap))
    if named is not None:
        org = await store.accounts.org_named(named)
        held = None if org is None else await store.members.role_in(org.id, user.id)
        if org is None or held is None:
            raise NotFound(f"You are no member of an organisation named {named!r}.")
        return org, held
    memberships = await store.accounts.orgs_of(user.id)
    if len(memberships) == 1:
        return memberships[0]
    if not memberships:
        raise Forbidden(
            "You belong to no organisation yet: create one (fap org create NAME) or ask an admin "
            "of yours to invite you."
        )
    names = ", ".join(org.name for org, _ in memberships)
    raise BadRequest(
        f"You belong to several organisations ({names}); name one with --org NAME (the "
        f"{ORG_HEADER} header)."
    )


def _named_org(connection: _Connection) -> str | None:
    """The organisation the request names: the path's, else the header's."""
    named = connection.path_params.get("org")
    if isinstance(named, str) and named:
        return named
    header = connection.headers.get(ORG_HEADER)
    return header.strip() or None if header else None


def _check_named(connection: _Connection, own: Org) -> None:
    named = _named_org(connection)
    if named is not None and named != own.name:
        raise NotFound(f"This token acts in {own.name} alone; there is no {named!r} for it.")


async def _authenticate(store: Store, header: str | None, now: float) -> Credential:
    if not header:
        raise Unauthorized("This route needs a token: send Authorization: Bearer TOKEN.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must read Bearer TOKEN.")
    if token_kind(token) is None:
        raise Unauthorized("That is not a fap token; fap tokens start with fap_.")
    credential = await store.credentials.resolve(hash_token(token), now)
    if credential is None or credential.kind != token_kind(token):
        raise Unauthorized(
            "The token is unknown, expired or revoked; sign in again (fap login) or use another."
        )
    return credential


def _principal_of(request: _Connection, kind: type[Any], refusal: str) -> Any:
    principal = request.state.get(_PRINCIPAL)
    if not isinstance(principal, kind):
        raise Forbidden(refusal)
    return principal


async def caller(request: _Connection) -> Caller:
    """Dependency: the user and organisation the guard found (routes needing READ and above)."""
    found: Caller = _principal_of(request, Caller, "This route is for users of an organisation.")
    return found


async def person(request: _Connection) -> Person:
    """Dependency: the signed-in user (routes needing SIGNED_IN)."""
    found: Person = _principal_of(request, Person, "This route is for users.")
    return found


async def processor(request: _Connection) -> Processor:
    """Dependency: the processor the guard found (routes needing PROCESS)."""
    found: Processor = _principal_of(
        request, Processor, "Only processor tokens may lease and run jobs."
    )
    return found
