"""Signing in, signing out, and who is signed in: what ``fap login``, ``fap logout`` and
``fap whoami`` do.

Signing in: the server's public list of identity providers chooses the provider, the provider's
flow gives an ID token (msal for Microsoft, google-auth-oauthlib or the device flow for Google,
the device flow for any other OpenID Connect provider), and the server exchanges it for a session
of its own, which is stored for later commands with the provider's refresh token, to renew it
(:mod:`fap.client.credentials`).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from fap import __version__
from fap.api import (
    AUTH_SIGN_IN,
    AUTH_SIGN_OUT,
    ApiSession,
    Me,
    Membership,
    SessionTokens,
    SignIn,
)
from fap.client.access import fetch_me
from fap.client.credentials import SignedInSession, forget_session, remember_session
from fap.client.public_api import PublicApi
from fap.client.session import connect
from fap.client.signin import SignInPrompt, choose_provider, sign_in_tokens
from fap.client.state import remember_server
from fap.config import ClientSettings
from fap.errors import AuthError, ServerUnreachable
from fap.issuers import ProviderKind

__all__ = ("SignOutOutcome", "SignedIn", "sign_in", "sign_out", "who_am_i")


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a sign-in signed in (no token: those stay in the session store)."""

    server: str
    issuer: str
    user_id: str
    email: str | None
    orgs: list[Membership]  # every organisation the user belongs to, with the role there
    joined: list[Membership]  # those joined by this sign-in (invitations, email domains)


class SignOutOutcome(enum.Enum):
    SIGNED_OUT = "signed out"  # the server ended the session, and it is forgotten here
    ENDED_ALREADY = "ended already"  # the server had ended it before (expired, reused…)
    UNREACHABLE = "unreachable"  # forgotten here; the server did not answer to end it
    NOT_SIGNED_IN = "not signed in"  # nothing was stored for the server


async def sign_in(
    settings: ClientSettings,
    prompt: SignInPrompt,
    *,
    issuer: str | None = None,
    client_id: str | None = None,
    kind: ProviderKind | None = None,
    client_secret: str | None = None,
    warn: Callable[[str], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    provider_tls: ssl.SSLContext | bool = True,
) -> SignedIn:
    """Sign in to ``settings.server`` and store the session. ``warn`` is told where the session
    is kept when no keyring works; ``transport`` reaches the fap server (tests: in-process),
    ``provider_tls`` verifies the identity provider (tests: their CA)."""
    server = settings.server
    async with PublicApi(server, retry_for=settings.retry_for, transport=transport) as api:
        listed = (await api.providers()).providers
        choice = choose_provider(
            listed,
            server=server,
            issuer=issuer,
            client_id=client_id,
            kind=kind,
            ask=prompt.choose if prompt.interactive else None,
        )
        provider = await sign_in_tokens(
            choice, prompt, client_secret=client_secret, provider_tls=provider_tls
        )
        tokens = await api.send(
            "POST",
            AUTH_SIGN_IN,
            SignIn(id_token=provider.id_token),
            returns=SessionTokens,
            what="The sign-in",
        )
    await remember_session(
        settings, tokens, choice, provider, client_secret=client_secret, warn=warn
    )
    async with ApiSession(
        server,
        tokens.access_token,
        retry_for=settings.retry_for,
        user_agent=f"fap/{__version__}",
        transport=transport,
    ) as session:
        me = await fetch_me(session)
    remember_server(settings.home, server)
    return SignedIn(
        server=server,
        issuer=choice.issuer,
        user_id=tokens.user_id,
        email=me.email,
        orgs=me.orgs,
        joined=tokens.joined,
    )


async def sign_out(
    settings: ClientSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> SignOutOutcome:
    """End the stored session of ``settings.server`` on the server, and forget it here whatever
    the server says, or if it says nothing."""
    stored = await SignedInSession.load(settings, transport=transport)
    if stored is None:
        return SignOutOutcome.NOT_SIGNED_IN
    try:
        async with ApiSession(
            settings.server,
            await stored.token(),
            retry_for=settings.retry_for,
            user_agent=f"fap/{__version__}",
            transport=transport,
            renew=stored.renew,
        ) as session:
            await session.call("POST", AUTH_SIGN_OUT)
    except AuthError:
        return SignOutOutcome.ENDED_ALREADY
    except ServerUnreachable:
        return SignOutOutcome.UNREACHABLE
    finally:
        await forget_session(settings)
    return SignOutOutcome.SIGNED_OUT


async def who_am_i(
    settings: ClientSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> Me:
    """The user the command's credentials speak for, with their organisations and roles."""
    async with connect(settings, transport=transport) as session:
        return await fetch_me(session)
