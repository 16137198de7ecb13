"""One way in for every kind of provider: a sign-in's tokens, and a fresh ID token later.

Microsoft signs in through msal, Google through google-auth-oauthlib or the device flow, any other
OpenID Connect provider through the device flow. msal and google-auth-oauthlib take a third of a
second to import, so they are imported here only when their provider is the one signed in with.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from fap.client.signin.device_flow import device_tokens
from fap.client.signin.oidc import ProviderTokens, discover, provider_http, refresh_tokens
from fap.client.signin.prompt import SignInPrompt
from fap.client.signin.providers import ProviderChoice
from fap.issuers import ProviderKind

__all__ = ("ProviderGrant", "renewed_tokens", "sign_in_tokens")


@dataclass(frozen=True, slots=True)
class ProviderGrant:
    """What renewing the ID token needs, kept with the session it renews."""

    kind: ProviderKind
    issuer: str
    client_id: str
    refresh_token: str  # the provider's
    client_secret: str | None = None  # Google's desktop clients' (which Google says is no secret)


async def sign_in_tokens(
    choice: ProviderChoice,
    prompt: SignInPrompt,
    *,
    client_secret: str | None = None,
    provider_tls: ssl.SSLContext | bool = True,
) -> ProviderTokens:
    """The person signs in with ``choice``: the provider's ID token and refresh token."""
    if choice.kind == "microsoft":
        from fap.client.signin.microsoft import microsoft_tokens

        return await microsoft_tokens(choice, prompt)
    async with provider_http(provider_tls) as http:
        if choice.kind == "google":
            from fap.client.signin.google import google_tokens

            return await google_tokens(choice, prompt, http=http, client_secret=client_secret)
        endpoints = await discover(http, choice.issuer)
        return await device_tokens(
            http, endpoints, choice.client_id, prompt, client_secret=client_secret
        )


async def renewed_tokens(
    grant: ProviderGrant, *, provider_tls: ssl.SSLContext | bool = True
) -> ProviderTokens:
    """A fresh ID token of the person signed in, and the provider's next refresh token."""
    if grant.kind == "microsoft":
        from fap.client.signin.microsoft import microsoft_refresh

        return await microsoft_refresh(grant.issuer, grant.client_id, grant.refresh_token)
    async with provider_http(provider_tls) as http:
        endpoints = await discover(http, grant.issuer)
        return await refresh_tokens(
            http, endpoints, grant.client_id, grant.refresh_token, client_secret=grant.client_secret
        )
