"""The OAuth 2.0 device authorization grant (RFC 8628) with any OpenID Connect provider, async.

With the provider's endpoints (:func:`fap.client.signin.oidc.discover`), the client asks for a
code, shows it, and polls the token endpoint every ``interval`` seconds (5 more after each
``slow_down``, twice as long after a failed connection, §3.5) until the person approves, denies,
or the code expires; then it has the ID token it came for, and the provider's refresh token, to
renew the ID token with later (:func:`fap.client.signin.oidc.refresh_tokens`).

Nothing here logs or shows the device code or a token; only the user code is shown, to the person.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
import msgspec

from fap.client.signin.oidc import (
    Endpoints,
    ProviderTokens,
    TokenAnswer,
    check_working,
    client_form,
    provider_request,
    reason,
    scope_for,
)
from fap.client.signin.prompt import DeviceCode, SignInPrompt
from fap.errors import AuthError, ConfigError, ServerUnreachable

__all__ = ("DEVICE_CODE_GRANT", "device_tokens")

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_SLOW_DOWN = 5.0  # seconds added to the interval by each slow_down (RFC 8628 §3.5)
_DEFAULT_INTERVAL = 5.0  # when the provider names none (§3.2)
_MAX_INTERVAL = 60.0  # the longest pause the back-off after a failed poll grows to

log = logging.getLogger(__name__)


class _Authorization(msgspec.Struct):
    device_code: str
    user_code: str
    expires_in: float
    verification_uri: str | None = None
    verification_url: str | None = None  # Google's name for it
    verification_uri_complete: str | None = None
    interval: float = _DEFAULT_INTERVAL


async def device_tokens(
    http: httpx.AsyncClient,
    endpoints: Endpoints,
    client_id: str,
    prompt: SignInPrompt,
    *,
    client_secret: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProviderTokens:
    """Sign in with the device grant: the provider's tokens, once the person has approved."""
    issuer = endpoints.issuer.rstrip("/")
    if endpoints.device_authorization_endpoint is None:
        raise ConfigError(
            f"{issuer} offers no device sign-in (RFC 8628); ask its administrator to enable it."
        )
    client = client_form(client_id, client_secret)
    authorization = await _authorize(
        http,
        issuer,
        endpoints.device_authorization_endpoint,
        {**client, "scope": scope_for(endpoints)},
    )
    started = clock()
    verification_uri = authorization.verification_uri or authorization.verification_url
    if not verification_uri:
        raise AuthError(f"{issuer} answered the device sign-in without a page to approve it on.")
    code = DeviceCode(
        user_code=authorization.user_code,
        verification_uri=verification_uri,
        verification_uri_complete=authorization.verification_uri_complete,
        expires_in=authorization.expires_in,
    )
    prompt.show_code(code)
    if prompt.browser:
        prompt.open_browser(code.verification_uri_complete or code.verification_uri)
    poll = {**client, "grant_type": DEVICE_CODE_GRANT, "device_code": authorization.device_code}
    return await _poll(
        http,
        issuer,
        endpoints.token_endpoint,
        poll,
        authorization,
        started + code.expires_in,
        clock,
    )


async def _authorize(
    http: httpx.AsyncClient, issuer: str, endpoint: str, form: dict[str, str]
) -> _Authorization:
    response = await provider_request(http, issuer, "POST", endpoint, data=form)
    check_working(issuer, response)
    try:
        answer = msgspec.json.decode(response.content, type=TokenAnswer)
        if answer.error is None and response.is_success:
            return msgspec.json.decode(response.content, type=_Authorization)
    except msgspec.DecodeError:
        answer = TokenAnswer(error=f"HTTP {response.status_code}")
    raise AuthError(
        f"{issuer} would not start a device sign-in for client {form['client_id']} "
        f"({reason(answer)}); check the client id, or ask the provider's administrator."
    )


async def _poll(
    http: httpx.AsyncClient,
    issuer: str,
    endpoint: str,
    form: dict[str, str],
    authorization: _Authorization,
    deadline: float,
    clock: Callable[[], float],
) -> ProviderTokens:
    interval = max(authorization.interval, 1.0) if authorization.interval else _DEFAULT_INTERVAL
    pause = interval
    failing: str | None = None  # what went wrong with the last poll, if it did
    while True:
        if clock() + pause > deadline:
            if failing is not None:
                raise ServerUnreachable(
                    f"The identity provider {issuer} stopped answering ({failing}) while the "
                    "sign-in waited for approval; run fap login again."
                )
            raise _expired()
        # The protocol's own pacing (RFC 8628 §3.4): the provider says how often to ask.
        await asyncio.sleep(pause)
        try:
            response = await http.post(endpoint, data=form)
            answer = msgspec.json.decode(response.content, type=TokenAnswer)
        except (httpx.TransportError, msgspec.DecodeError) as error:
            failing = type(error).__name__
        else:
            failing = f"status {response.status_code}" if response.status_code >= 500 else None
        if failing is not None:
            # A provider briefly away: ask again, less often (§3.5), until the code expires.
            log.debug("polling %s failed (%s); backing off", issuer, failing)
            pause = min(_MAX_INTERVAL, pause * 2)
            continue
        pause = interval
        if answer.error is None and response.is_success:
            if answer.id_token:
                return ProviderTokens(answer.id_token, answer.refresh_token)
            raise AuthError(
                f"{issuer} signed you in but sent no ID token; the client must be allowed the "
                "openid scope."
            )
        if answer.error == "authorization_pending":
            continue
        if answer.error == "slow_down":
            interval += _SLOW_DOWN
            pause = interval
            continue
        if answer.error == "access_denied":
            raise AuthError(f"The sign-in was denied at {issuer}; run fap login again to sign in.")
        if answer.error == "expired_token":
            raise _expired()
        raise AuthError(f"{issuer} refused the sign-in ({reason(answer)}).")


def _expired() -> AuthError:
    return AuthError(
        "The sign-in code expired before it was approved; run fap login again for a new one."
    )
