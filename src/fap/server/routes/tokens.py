"""API tokens (for CI: a user's, capped at a role) and processor tokens (for ``fap work``).

A token's text is answered once, when it is made; the server keeps its SHA-256 alone. Anyone may
make tokens for themselves up to their own role; processor tokens, and every token of others,
are for admins and owners.
"""

from __future__ import annotations

import math

from litestar import delete, get, post
from litestar.params import FromPath, JSONBody

from fap.api import TOKEN, TOKENS, TokenCreate, TokenCreated, TokenInfo, TokenList, TokenRole
from fap.api.roles import at_least, role_named
from fap.server.auth import Caller, Permission, TokenKind, granted, hash_token, needs, new_token
from fap.server.errors import BadRequest, Forbidden, NotFound, shown_id
from fap.server.routes.deps import CallerDep, ServicesDep, actor_of, route
from fap.server.routes.request import FapRequest
from fap.server.routes.validation import check_text
from fap.server.store import NewToken, Token

__all__ = ("create_token", "list_tokens", "revoke_token")

# Two years: a token that must outlive that is one nobody remembers making.
MAX_TOKEN_SECONDS = 2 * 366 * 24 * 3600.0


@post(route(TOKENS), opt=needs(Permission.READ), status_code=201)
async def create_token(
    request: FapRequest, data: JSONBody[TokenCreate], caller: CallerDep, services: ServicesDep
) -> TokenCreated:
    name = check_text(data.name, "token name", 200)
    if data.role == "processor":
        if not granted(caller.role, Permission.MANAGE_MEMBERS):
            raise Forbidden("Only owners and admins may make processor tokens.")
    elif not at_least(caller.role, role_named(data.role)):
        raise Forbidden(
            f"Your role in {caller.org.name} is {caller.role}: a token of yours can be no more."
        )
    now = services.clock()
    expires_at = None if data.expires_in is None else now + _lifetime(data.expires_in)
    kind: TokenKind = "processor" if data.role == "processor" else "user"
    text = new_token(kind)
    new = NewToken(
        kind=kind,
        org_id=caller.org.id,
        user_id=None if kind == "processor" else caller.user.id,
        name=name,
        role=None if kind == "processor" else data.role,
        expires_at=expires_at,
    )
    token = await services.store.credentials.create(
        hash_token(text), new, actor_of(request, caller.user), now
    )
    assert token.id is not None
    return TokenCreated(id=token.id, token=text, role=data.role, expires_at=expires_at)


@get(route(TOKENS), opt=needs(Permission.READ))
async def list_tokens(caller: CallerDep, services: ServicesDep) -> TokenList:
    """The organisation's tokens (admins see all, others their own), revoked ones too."""
    tokens = await services.store.credentials.of_org(caller.org.id)
    return TokenList(tokens=[_info(token) for token in tokens if _may_see(caller, token)])


@delete(route(TOKEN), opt=needs(Permission.READ), status_code=204)
async def revoke_token(
    request: FapRequest, token_id: FromPath[str], caller: CallerDep, services: ServicesDep
) -> None:
    tokens = await services.store.credentials.of_org(caller.org.id)
    token = next((token for token in tokens if token.id == token_id), None)
    if token is None or not _may_see(caller, token) or token.revoked_at is not None:
        raise NotFound(f"{caller.org.name} has no active token {shown_id(token_id)} of yours.")
    await services.store.credentials.revoke(
        caller.org.id, token_id, actor_of(request, caller.user), services.clock()
    )


def _lifetime(seconds: float) -> float:
    if math.isnan(seconds) or not 0 < seconds <= MAX_TOKEN_SECONDS:
        raise BadRequest(
            f"A token expires after more than 0 seconds and at most {MAX_TOKEN_SECONDS:.0f} "
            "(two years)."
        )
    return seconds


def _may_see(caller: Caller, token: Token) -> bool:
    return token.user_id == caller.user.id or granted(caller.role, Permission.MANAGE_MEMBERS)


def _info(token: Token) -> TokenInfo:
    assert token.id is not None
    role: TokenRole = (
        "processor" if token.kind == "processor" else role_named(token.role or "owner")
    )
    return TokenInfo(
        id=token.id,
        name=token.name,
        role=role,
        user_id=token.user_id,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
    )
