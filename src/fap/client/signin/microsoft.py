"""Signing in with Microsoft Entra ID: msal's device flow (``PublicClientApplication``).

A Microsoft issuer, ``https://login.microsoftonline.com/{tenant}/v2.0``, is msal's ``authority``
without the ``/v2.0``. Any other issuer signed in to as ``--provider microsoft`` (an External ID
tenant, or the tests' provider) is msal's ``oidc_authority``, read from its discovery document;
msal insists on https and a path there.

msal blocks (it speaks requests), so each of its calls runs in a thread, and this coroutine paces
the polls itself: msal makes one attempt per call (``exit_condition`` is always true), so that a
cancellation or Ctrl-C ends the sign-in at once instead of after msal's own loop. requests trusts
the system CAs, or ``REQUESTS_CA_BUNDLE``'s.

msal keeps its tokens in a cache of its own, in memory here: fap keeps the one it needs, the
refresh token, with its session, and renews the ID token with it through msal
(``acquire_token_by_refresh_token``), as the fap server asks at each renewal of its session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msal

from fap.client.signin.oidc import ProviderTokens
from fap.client.signin.prompt import DeviceCode, SignInPrompt
from fap.client.signin.providers import ProviderChoice
from fap.errors import AuthError, ConfigError, ServerUnreachable
from fap.issuers import MICROSOFT_HOST

__all__ = ("authority_of", "microsoft_refresh", "microsoft_tokens")

# msal adds openid, profile and offline_access itself (and refuses them here).
_SCOPES = ["email"]
_PENDING = frozenset({"authorization_pending", "slow_down"})
_DENIED = frozenset({"authorization_declined", "access_denied"})
_EXPIRED = frozenset({"expired_token", "code_expired"})
_TIMEOUT = 20.0  # seconds for each of msal's requests


def _once(_flow: dict[str, Any]) -> bool:
    return True


def authority_of(issuer: str) -> dict[str, str]:
    """msal's keyword for ``issuer``: ``authority`` for Microsoft's, ``oidc_authority`` else."""
    prefix = f"https://{MICROSOFT_HOST}/"
    if issuer.startswith(prefix):
        return {"authority": issuer.removesuffix("/v2.0")}
    return {"oidc_authority": issuer}


async def _application(issuer: str, client_id: str) -> Any:
    # Building it fetches the authority's discovery document: in a thread too.
    return await _call(
        issuer,
        msal.PublicClientApplication,
        client_id,
        timeout=_TIMEOUT,
        **authority_of(issuer),
    )


async def microsoft_tokens(
    choice: ProviderChoice, prompt: SignInPrompt, *, clock: Callable[[], float] = time.monotonic
) -> ProviderTokens:
    """Sign in with msal's device flow: the tokens, once the person has approved."""
    issuer = choice.issuer
    app = await _application(issuer, choice.client_id)
    flow: dict[str, Any] = await _call(issuer, app.initiate_device_flow, scopes=_SCOPES)
    if "user_code" not in flow:
        raise AuthError(
            f"{issuer} would not start a device sign-in for client {choice.client_id} "
            f"({_reason(flow)}); check the client id, and that it allows public client flows."
        )
    code = DeviceCode(
        user_code=str(flow["user_code"]),
        verification_uri=str(flow.get("verification_uri") or flow.get("verification_url")),
        verification_uri_complete=flow.get("verification_uri_complete"),
        expires_in=float(flow.get("expires_in", 900)),
    )
    prompt.show_code(code)
    if prompt.browser:
        prompt.open_browser(code.verification_uri_complete or code.verification_uri)
    deadline = clock() + code.expires_in
    while True:
        pause = float(flow.get("interval", 5))  # msal adds 5 after each slow_down
        if clock() + pause > deadline:
            raise _expired()
        # The protocol's own pacing (RFC 8628 §3.4), here rather than in msal's loop.
        await asyncio.sleep(pause)
        result: dict[str, Any] = await _call(
            issuer, app.acquire_token_by_device_flow, flow, exit_condition=_once
        )
        error = result.get("error")
        if error is None:
            return _tokens(issuer, result, "signed you in")
        if error in _PENDING:
            continue
        if error in _DENIED:
            raise AuthError(f"The sign-in was denied at {issuer}; run fap login again to sign in.")
        if error in _EXPIRED:
            raise _expired()
        raise AuthError(f"{issuer} refused the sign-in ({_reason(result)}).")


async def microsoft_refresh(issuer: str, client_id: str, refresh_token: str) -> ProviderTokens:
    """A fresh ID token by the refresh token msal got at the sign-in (rotated, if Entra does)."""
    app = await _application(issuer, client_id)
    result: dict[str, Any] = await _call(
        issuer, app.acquire_token_by_refresh_token, refresh_token, scopes=_SCOPES
    )
    if result.get("error") is not None:
        raise AuthError(
            f"{issuer} no longer renews your sign-in ({_reason(result)}); sign in again with "
            "fap login."
        )
    tokens = _tokens(issuer, result, "renewed your sign-in")
    return ProviderTokens(tokens.id_token, tokens.refresh_token or refresh_token)


def _tokens(issuer: str, result: dict[str, Any], done: str) -> ProviderTokens:
    id_token = result.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise AuthError(f"{issuer} {done} but sent no ID token, which the fap server needs.")
    refresh_token = result.get("refresh_token")
    return ProviderTokens(id_token, refresh_token if isinstance(refresh_token, str) else None)


async def _call(issuer: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function`` in a thread, its failures as fap's errors."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except OSError as error:  # requests' ConnectionError, SSLError and Timeout among them
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            raise ConfigError(
                f"The TLS certificate of the identity provider {issuer} is not trusted here; if "
                "it comes from a private CA, point REQUESTS_CA_BUNDLE at that CA."
            ) from error
        raise ServerUnreachable(
            f"The identity provider {issuer} does not answer ({type(error).__name__}); check "
            "that it is up and that this machine can reach it, then try again."
        ) from error
    except ValueError as error:  # msal's word for a discovery document it cannot use
        raise ConfigError(
            f"{issuer} cannot be used with --provider microsoft: {_first_sentence(error)}."
        ) from error
    except RuntimeError as error:  # msal's IdTokenError: the ID token's claims are wrong
        raise AuthError(
            f"The ID token from {issuer} did not check out: {_first_sentence(error)}."
        ) from error


def _expired() -> AuthError:
    return AuthError(
        "The sign-in code expired before it was approved; run fap login again for a new one."
    )


def _reason(answer: dict[str, Any]) -> str:
    text = str(answer.get("error") or "no reason given")
    description = answer.get("error_description")
    if description:
        # Entra's descriptions carry trace ids and timestamps on further lines.
        text += ": " + str(description).splitlines()[0].rstrip(".")
    return "".join(char for char in text if char.isprintable())[:200]


def _first_sentence(error: Exception) -> str:
    text = str(error).strip().split(". ")[0].rstrip(".")
    return "".join(char for char in text if char.isprintable())[:200]
