"""An OpenID Connect provider, over httpx: its discovery document, its token endpoint's answers,
and the refresh grant.

The discovery document (OpenID Connect Discovery 1.0) must name the issuer it was fetched for
(§4.3), and https endpoints. The refresh grant (OpenID Connect Core §12) is how fap gets a fresh
ID token of the person signed in: the fap server renews its own session only for one.
``offline_access``, which some providers need to give a refresh token, is asked for where the
provider lists it (Google does not: it gives one without).

Nothing here logs or shows a token; a provider's refusal is quoted by its error code and
description only.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx
import msgspec

from fap.errors import AuthError, ConfigError, ServerUnreachable
from fap.issuers import is_secure_url

__all__ = (
    "SCOPE",
    "Endpoints",
    "ProviderTokens",
    "TokenAnswer",
    "check_working",
    "client_form",
    "discover",
    "provider_http",
    "provider_request",
    "reason",
    "refresh_tokens",
    "scope_for",
)

SCOPE = "openid email profile"  # who the person is


class Endpoints(msgspec.Struct):
    """The parts of a discovery document a sign-in uses."""

    issuer: str
    token_endpoint: str
    device_authorization_endpoint: str | None = None
    authorization_endpoint: str | None = None
    scopes_supported: list[str] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProviderTokens:
    """What a provider's sign-in or refresh gives fap: an ID token for the server, and the
    provider's refresh token, to get the next ID token with (None: the provider gave none)."""

    id_token: str
    refresh_token: str | None


def scope_for(endpoints: Endpoints) -> str:
    """The scopes to ask for: the person's identity, and a refresh token where that needs asking."""
    offline = " offline_access" if "offline_access" in endpoints.scopes_supported else ""
    return SCOPE + offline


class TokenAnswer(msgspec.Struct):
    """A token endpoint's answer (RFC 6749 §5.1 and §5.2), as far as fap reads it."""

    id_token: str | None = None
    refresh_token: str | None = None
    error: str | None = None
    error_description: str | None = None


def provider_http(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """An HTTP client for identity providers (system CAs, or SSL_CERT_FILE's, unless ``verify``)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=10.0), verify=verify)


async def discover(http: httpx.AsyncClient, issuer: str) -> Endpoints:
    """The endpoints of ``issuer`` (already checked by :func:`fap.issuers.check_issuer_url`)."""
    url = f"{issuer}/.well-known/openid-configuration"
    response = await provider_request(http, issuer, "GET", url)
    check_working(issuer, response)
    try:
        response.raise_for_status()
        endpoints = msgspec.json.decode(response.content, type=Endpoints)
    except (httpx.HTTPStatusError, msgspec.DecodeError):
        raise ConfigError(
            f"{issuer} has no OpenID Connect discovery document at {url} "
            f"({response.status_code}); check the issuer URL."
        ) from None
    if endpoints.issuer.rstrip("/") != issuer:
        raise ConfigError(
            f"The discovery document of {issuer} names another issuer; check the issuer URL."
        )
    for endpoint in (endpoints.token_endpoint, endpoints.device_authorization_endpoint):
        if endpoint is not None and not is_secure_url(endpoint):
            raise ConfigError(f"{issuer} names an endpoint without https ({endpoint}); refused.")
    return endpoints


async def refresh_tokens(
    http: httpx.AsyncClient,
    endpoints: Endpoints,
    client_id: str,
    refresh_token: str,
    *,
    client_secret: str | None = None,
) -> ProviderTokens:
    """A fresh ID token for the person signed in, by the provider's refresh token (rotated if the
    provider rotates it). AuthError if the provider no longer vouches for them."""
    issuer = endpoints.issuer.rstrip("/")
    form = {
        **client_form(client_id, client_secret),
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    }
    response = await provider_request(http, issuer, "POST", endpoints.token_endpoint, data=form)
    check_working(issuer, response)
    try:
        answer = msgspec.json.decode(response.content, type=TokenAnswer)
    except msgspec.DecodeError:
        answer = TokenAnswer(error=f"HTTP {response.status_code}")
    if answer.error is not None or not response.is_success:
        raise AuthError(
            f"{issuer} no longer renews your sign-in ({reason(answer)}); sign in again with "
            "fap login."
        )
    if not answer.id_token:
        raise AuthError(
            f"{issuer} renewed your sign-in without an ID token, which the fap server needs to "
            "renew its session; sign in again with fap login."
        )
    return ProviderTokens(answer.id_token, answer.refresh_token or refresh_token)


def client_form(client_id: str, client_secret: str | None) -> dict[str, str]:
    """How a public client names itself in a form (RFC 6749 §2.3.1), with a secret if it has one."""
    return {"client_id": client_id} | ({"client_secret": client_secret} if client_secret else {})


async def provider_request(
    http: httpx.AsyncClient,
    issuer: str,
    method: str,
    url: str,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    """One request to ``issuer``; a provider out of reach or not trusted is one sentence."""
    try:
        return await http.request(method, url, data=data)
    except httpx.ConnectError as error:
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            raise ConfigError(
                f"The TLS certificate of the identity provider {issuer} is not trusted here; "
                "if it comes from a private CA, point SSL_CERT_FILE at that CA."
            ) from error
        raise _down(issuer, error) from error
    except httpx.TransportError as error:
        raise _down(issuer, error) from error


def check_working(issuer: str, response: httpx.Response) -> None:
    """ServerUnreachable for a 5xx: the provider is there but not working; try again later."""
    if response.status_code >= 500:
        raise ServerUnreachable(
            f"The identity provider {issuer} is not working (it answered {response.status_code}); "
            "try again later."
        )


def _down(issuer: str, error: httpx.TransportError) -> ServerUnreachable:
    return ServerUnreachable(
        f"The identity provider {issuer} does not answer ({type(error).__name__}); check that "
        "it is up and that this machine can reach it, then try again."
    )


def reason(answer: TokenAnswer) -> str:
    """The provider's error code and description, as a short printable clause."""
    text = answer.error or "no reason given"
    if answer.error_description:
        text += ": " + answer.error_description.rstrip(".")
    return "".join(char for char in text if char.isprintable())[:200]
