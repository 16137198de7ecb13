"""Signing in with Google: the installed-app loopback flow where a browser is at hand, the device
flow (RFC 8628) where none is.

google-auth-oauthlib has no device flow. With a browser, its ``InstalledAppFlow`` sends the person
to Google's consent page, with PKCE, and takes the code back on a one-request server on
127.0.0.1 (RFC 8252 §7.3: an IP literal, never ``localhost``). Without one, Google's device
endpoint, which its discovery document names, is used by :mod:`fap.client.signin.device_flow`.
Both take the endpoints from the issuer's discovery document, so any provider forced to
``--provider google`` is signed in to the same way. The loopback flow asks for Google's refresh
token (``access_type=offline``, and ``prompt=consent``, without which Google gives one only the
first time); renewing the ID token with it is the generic refresh of ``device_flow``.

Google's desktop clients come with a "client secret" that Google documents as not secret; the
server lists only client ids, so it is given with FAP_CLIENT_SECRET where the client needs one.
Without it the client id goes in the token request's body, as a public client's (RFC 6749 §2.1).

The loopback flow blocks (a WSGI server, requests), so it runs in a daemon thread: a Ctrl-C ends
the process without waiting for a browser that will never come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import webbrowser
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from google_auth_oauthlib.flow import (
    InstalledAppFlow,
    WSGITimeoutError,
)
from oauthlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    MismatchingStateError,
    OAuth2Error,
)

from fap.client.signin.device_flow import device_tokens
from fap.client.signin.oidc import Endpoints, ProviderTokens, discover, scope_for
from fap.client.signin.prompt import SignInPrompt
from fap.client.signin.providers import ProviderChoice
from fap.errors import AuthError, ServerUnreachable

__all__ = ("LOOPBACK_SECONDS", "google_tokens")

T = TypeVar("T")

LOOPBACK_SECONDS = 600  # how long the browser has to come back, as long as a device code lasts
_BROWSER = "fap-sign-in"  # the webbrowser entry through which the flow hands over its URL
_DONE_PAGE = "Signed in to fap. You may close this window and go back to the terminal."


async def google_tokens(
    choice: ProviderChoice,
    prompt: SignInPrompt,
    *,
    http: httpx.AsyncClient,
    client_secret: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProviderTokens:
    """Sign in with Google (or a provider signed in to as Google): the tokens."""
    endpoints = await discover(http, choice.issuer)
    if prompt.browser and endpoints.authorization_endpoint:
        return await _in_daemon_thread(
            lambda: _loopback(choice, endpoints, prompt, client_secret or None)
        )
    return await device_tokens(
        http, endpoints, choice.client_id, prompt, client_secret=client_secret, clock=clock
    )


class _Flow(InstalledAppFlow):  # type: ignore[misc]  # untyped base
    def fetch_token(self, **kwargs: Any) -> Any:
        if not self.client_config.get("client_secret"):
            # A public client: its id in the body, not in a Basic header with an empty password.
            kwargs.setdefault("include_client_id", True)
        return super().fetch_token(**kwargs)


class _HandOver(webbrowser.BaseBrowser):
    """The "browser" the flow opens: the prompt, which shows the URL and opens the real one."""

    def __init__(self, open_url: Callable[[str], None]) -> None:
        super().__init__(_BROWSER)
        self._open_url = open_url

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self._open_url(url)
        return True


def _loopback(
    choice: ProviderChoice, endpoints: Endpoints, prompt: SignInPrompt, client_secret: str | None
) -> ProviderTokens:
    config = {
        "installed": {
            "client_id": choice.client_id,
            "client_secret": client_secret,
            "auth_uri": endpoints.authorization_endpoint,
            "token_uri": endpoints.token_endpoint,
            "redirect_uris": ["http://127.0.0.1"],
        }
    }
    flow = _Flow.from_client_config(config, scopes=scope_for(endpoints).split())
    webbrowser.register(_BROWSER, None, _HandOver(prompt.open_browser))
    issuer = choice.issuer
    try:
        flow.run_local_server(
            host="127.0.0.1",
            port=0,
            browser=_BROWSER,
            authorization_prompt_message=None,  # it would print on stdout: the prompt shows it
            success_message=_DONE_PAGE,
            timeout_seconds=LOOPBACK_SECONDS,
            access_type="offline",
            prompt="consent",
        )
    except Warning as changed:
        # oauthlib raises a Warning when the scopes granted differ from those asked for (Google
        # names them as URLs); the tokens are in it, and only the ID token matters.
        token = getattr(changed, "token", {})
    except WSGITimeoutError:
        raise AuthError(
            f"Nobody finished signing in to {issuer} in the browser within "
            f"{LOOPBACK_SECONDS // 60} minutes; run fap login again."
        ) from None
    except AccessDeniedError:
        raise AuthError(
            f"The sign-in was denied at {issuer}; run fap login again to sign in."
        ) from None
    except MismatchingStateError:
        raise AuthError(
            "The browser came back from another sign-in than this one; run fap login again."
        ) from None
    except OAuth2Error as error:
        reason = f"{error.error}: {error.description}" if error.description else error.error
        raise AuthError(f"{issuer} refused the sign-in ({str(reason)[:200]}).") from None
    except OSError as error:  # requests' ConnectionError among them
        raise ServerUnreachable(
            f"The identity provider {issuer} does not answer ({type(error).__name__}); check "
            "that it is up and that this machine can reach it, then try again."
        ) from error
    else:
        token = flow.oauth2session.token
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str) or not id_token:
        raise AuthError(f"{issuer} signed you in but sent no ID token.")
    refresh_token = token.get("refresh_token")
    return ProviderTokens(id_token, refresh_token if isinstance(refresh_token, str) else None)


async def _in_daemon_thread(function: Callable[[], T]) -> T:
    """``function()`` in a daemon thread; its result or its exception, awaited."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = function()
        except BaseException as error:  # noqa: BLE001  (handed to the awaiting task, which raises it)
            deliver = functools.partial(_fail, future, error)
        else:
            deliver = functools.partial(_succeed, future, result)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(deliver)

    threading.Thread(target=run, name="fap-google-sign-in", daemon=True).start()
    return await future


def _succeed(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future[T], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
