"""The server's public sign-in routes, called without a bearer token and sent with care.

:class:`~fap.api.ApiSession` resends a request whose answer was lost, which its routes allow. A
refresh token is the exception: it is used once, and a second use ends the whole session (the
server must assume a copy). So a refresh is sent again only when it surely never reached a server
(the connection was refused or not made), or when the server answered 503, which it does before
it has changed anything. Any other failure after sending is reported, never retried. Signing in
follows the same rules: an ID token could be sent twice without harm, but one rule is simpler.
"""

from __future__ import annotations

import asyncio
import time
from typing import TypeVar

import httpx
import msgspec

from fap import __version__
from fap.api import (
    API_VERSION,
    API_VERSION_HEADER,
    AUTH_PROVIDERS,
    ErrorBody,
    ProviderList,
    Struct,
    parse_servers,
    tls_context,
)
from fap.errors import AuthError, ServerError, ServerUnreachable

__all__ = ("PublicApi",)

T = TypeVar("T")

# Connection failures and 503s: nothing was done, so sending again is safe.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
_FIRST_PAUSE = 0.25
_MAX_PAUSE = 2.0


class PublicApi:
    """One keep-alive client for the public routes of ``server`` (one URL or several)."""

    def __init__(
        self,
        server: str,
        *,
        retry_for: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.servers = parse_servers(server)
        self.retry_for = retry_for
        self._http = httpx.AsyncClient(
            headers={API_VERSION_HEADER: API_VERSION, "User-Agent": f"fap/{__version__}"},
            timeout=httpx.Timeout(30.0, connect=10.0),
            transport=transport,
            verify=tls_context(),
        )

    async def __aenter__(self) -> PublicApi:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._http.aclose()

    async def providers(self) -> ProviderList:
        """The identity providers the server trusts (``GET /v1/auth/providers``)."""
        return await self.send("GET", AUTH_PROVIDERS, None, returns=ProviderList)

    async def send(
        self, method: str, path: str, body: Struct | None, *, returns: type[T], what: str = ""
    ) -> T:
        """The decoded answer. A 400, 401 or 403 is an AuthError saying that ``what`` (as "The
        sign-in") was refused, and why; no server taking the request within ``retry_for`` seconds
        is ServerUnreachable."""
        content = None if body is None else msgspec.json.encode(body)
        headers = {} if content is None else {"Content-Type": "application/json"}
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            server = self.servers[attempt % len(self.servers)]
            attempt += 1
            try:
                response = await self._http.request(
                    method, server + path, content=content, headers=headers
                )
            except _NOT_SENT as error:
                problem = type(error).__name__
            except httpx.TransportError as error:
                # Sent, perhaps acted on: sending it again could use a refresh token twice.
                raise ServerUnreachable(
                    f"The connection to {server} broke before it answered {method} {path} "
                    f"({type(error).__name__}); try again."
                ) from error
            else:
                if response.status_code != 503:
                    return _decoded(response, method, path, returns, what)
                problem = "status 503"
            rounds, rest = divmod(attempt, len(self.servers))
            if rest:
                continue  # on to the next replica at once; a pause after a whole round
            pause = min(_MAX_PAUSE, _FIRST_PAUSE * 2 ** (rounds - 1))
            if time.monotonic() + pause > deadline:
                raise ServerUnreachable(
                    f"The server at {', '.join(self.servers)} did not answer {method} {path} "
                    f"({problem}) for {self.retry_for:g} s; check that it is running and that "
                    "the address is right."
                )
            await asyncio.sleep(pause)


def _decoded(response: httpx.Response, method: str, path: str, returns: type[T], what: str) -> T:
    status = response.status_code
    if status >= 400:
        detail = _detail(response)
        if status in (400, 401, 403):
            raise AuthError(f"{what or 'The request'} was refused: {detail}.")
        raise ServerError(f"The server refused {method} {path} ({status}): {detail}.", status)
    try:
        return msgspec.json.decode(response.content, type=returns)
    except msgspec.DecodeError as error:
        raise ServerError(
            f"The server's answer to {method} {path} was not understood: {error}."
        ) from error


def _detail(response: httpx.Response) -> str:
    try:
        return msgspec.json.decode(response.content, type=ErrorBody).detail.rstrip(".")
    except msgspec.DecodeError:
        lines = response.text.strip().splitlines()
        return lines[0][:200] if lines else response.reason_phrase
