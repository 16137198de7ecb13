"""Signing in: the identity providers the server trusts, an ID token exchanged for the server's
own session, a refresh, signing out.

The first three are public (no bearer token: the caller has none yet); what they take is verified
instead, an ID token against its issuer's keys, a refresh token against its hash. Signing out
needs the session's access token. A session is renewed only with a fresh ID token of its user:
the identity provider decides, at every renewal, whether that person may still sign in.
"""

from __future__ import annotations

from litestar import get, post
from litestar.params import JSONBody

from fap.api import (
    AUTH_PROVIDERS,
    AUTH_REFRESH,
    AUTH_SIGN_IN,
    AUTH_SIGN_OUT,
    Membership,
    Provider,
    ProviderList,
    Refresh,
    SessionTokens,
    SignIn,
)
from fap.issuers import within_trusted
from fap.server.auth import Permission, needs, token_kind
from fap.server.auth.sessions import IssuedSession, refresh_session, start_session
from fap.server.errors import BadRequest, Unauthorized
from fap.server.routes.deps import PersonDep, ServicesDep
from fap.server.routes.request import FapRequest
from fap.server.store import Identity

__all__ = ("PUBLIC_HANDLERS", "providers", "refresh", "sign_in", "sign_out")

_MAX_TOKEN = 32 * 1024


@get(AUTH_PROVIDERS)
async def providers(services: ServicesDep) -> ProviderList:
    """The identity providers users sign in with, for ``fap login --server URL`` to find."""
    return ProviderList(
        providers=[
            Provider(issuer=trusted.issuer, client_id=trusted.client_id, kind=trusted.kind)
            for trusted in services.settings.trusted_issuers
        ]
    )


@post(AUTH_SIGN_IN, status_code=200)
async def sign_in(
    request: FapRequest, data: JSONBody[SignIn], services: ServicesDep
) -> SessionTokens:
    """Exchange an identity provider's ID token for a session of this server; invitations to the
    user's verified email are accepted now, and joining domains joined."""
    if not services.settings.trusted_issuers:
        raise BadRequest(
            "This server trusts no identity provider; its owner signs in with the local token."
        )
    if len(data.id_token) > _MAX_TOKEN:
        raise BadRequest("That is too long to be an ID token.")
    verified = await services.verifier.verify(data.id_token)
    vouching = services.settings.trusted_issuers
    identity = Identity(
        verified.issuer,
        verified.subject,
        verified.email,
        verified.email_verified,
        verified.name,
        tuple(t.issuer for t in vouching if within_trusted(verified.issuer, [t])),
    )
    now = services.clock()
    client = request.client
    signed_in = await services.store.accounts.sign_in(
        identity, client.host if client else None, now
    )
    issued = await start_session(services.store, signed_in.user, verified.issuer, now)
    joined = [Membership(org=org, role=role) for org, role in signed_in.joined]
    return _tokens(issued, signed_in.user.email, now, joined)


@post(AUTH_REFRESH, status_code=200)
async def refresh(data: JSONBody[Refresh], services: ServicesDep) -> SessionTokens:
    """The next access and refresh tokens, for a fresh ID token of the session's user.

    A refresh token is used once: a second use ends the session (whoever holds the copy is shut
    out with its owner, who signs in again). The ID token is how the identity provider keeps the
    last word: a user it disabled gets none, so their sessions end within an access token's
    lifetime, whichever device they are on.
    """
    if token_kind(data.refresh_token) != "refresh" or len(data.refresh_token) > 200:
        raise Unauthorized("That is not a fap refresh token; sign in again (fap login).")
    if len(data.id_token) > _MAX_TOKEN:
        raise BadRequest("That is too long to be an ID token.")
    verified = await services.verifier.verify(data.id_token)
    now = services.clock()
    issued = await refresh_session(services.store, data.refresh_token, now)
    user = await services.store.accounts.user(issued.user_id)
    if user is None or (user.issuer, user.subject) != (verified.issuer, verified.subject):
        await services.store.credentials.end_session(
            issued.session_id, "renewed with another person's ID token", now
        )
        raise Unauthorized("That ID token is another person's; the session is ended.")
    return _tokens(issued, user.email, now, [])


@post(AUTH_SIGN_OUT, opt=needs(Permission.SIGNED_IN), status_code=204)
async def sign_out(person: PersonDep, services: ServicesDep) -> None:
    """End the session of this access token: it and its refresh token stop working at once."""
    session_id = person.credential.session_id
    if session_id is None:
        raise BadRequest("This is an API token, not a sign-in; revoke it with fap token revoke.")
    await services.store.credentials.end_session(session_id, "signed out", services.clock())


def _tokens(
    issued: IssuedSession, email: str | None, now: float, joined: list[Membership]
) -> SessionTokens:
    return SessionTokens(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.access_expires_at - now,
        session_expires_at=issued.session_expires_at,
        user_id=issued.user_id,
        email=email,
        joined=joined,
    )


# Outside the token guard: the caller has no token yet.
PUBLIC_HANDLERS = (providers, sign_in, refresh)
