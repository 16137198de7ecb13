"""An authenticated session with a fap server, shared by the client and the worker.

It speaks the wire messages of :mod:`fap.api.messages`, sends the API version and the bearer token,
turns error answers into the :mod:`fap.errors` tree, and rides out a server that is briefly away:
connection failures and 502/503/504 are retried with jittered backoff for ``retry_for`` seconds.

The server may be several replicas, comma-separated (``http://a:8700,http://b:8700``). Requests
go to one of them and stay with it while it answers; a connection failure or a 502/503/504 moves
on to the next, round robin, at once, and only a whole round of failures waits before the next
round. The first round always runs, even with a zero budget: failover is what the list is for.

Sending a request again, to the same replica or another, is safe because every route is idempotent
or fenced by its lease token. The two that create something carry the caller's ``request_id``, so
that a copy sent after a lost answer gets what the first one made: ``POST /v1/uploads`` the same
upload, ``POST /v1/lease`` the same lease. The session resends the very same body, id included.

Every request names the API version this release speaks (``Fap-Api-Version``), so a newer server
answers in this release's shapes. When a server says that version is deprecated, the session
warns once; the newest client release the server advertises (``Fap-Client-Latest``) is handed
to ``on_release`` when first seen, and again if it changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx
import msgspec

from fap.api.messages import ErrorBody, Struct
from fap.api.paths import (
    API_VERSION,
    API_VERSION_HEADER,
    CLIENT_LATEST_HEADER,
    DEPRECATION_HEADER,
    ORG_HEADER,
    SUNSET_HEADER,
)
from fap.api.tls import tls_context
from fap.backoff import Backoff
from fap.errors import AuthError, ConfigError, ConflictError, ServerError, ServerUnreachable

__all__ = ("ApiSession", "parse_servers")

logger = logging.getLogger(__name__)

T = TypeVar("T")

_RETRYABLE_STATUS = frozenset({502, 503, 504})
# After a whole round of replicas failed; jittered, so clients cut off together come back apart.
_BETWEEN_ROUNDS = Backoff(first=0.4, cap=5.0)


def parse_servers(text: str) -> tuple[str, ...]:
    """The replicas ``--server`` / ``FAP_SERVER`` names: one URL, or several comma-separated."""
    servers = tuple(
        dict.fromkeys(part.strip().rstrip("/") for part in text.split(",") if part.strip())
    )
    if not servers:
        raise ConfigError("No server address was given; name one, as http://HOST:PORT.")
    for server in servers:
        if not server.startswith(("http://", "https://")):
            raise ConfigError(f"The server address {server!r} must start with http:// or https://.")
    return servers


class ApiSession:
    def __init__(
        self,
        server: str,
        token: str | None,
        *,
        retry_for: float = 30.0,
        user_agent: str = "fap",
        transport: httpx.AsyncBaseTransport | None = None,
        org: str | None = None,
        renew: Callable[[], Awaitable[str]] | None = None,
        warn: Callable[[str], None] | None = None,
        on_release: Callable[[str], None] | None = None,
        api_version: str = API_VERSION,
    ) -> None:
        """``org``: the organisation requests act in (for a user in several). ``renew``: how to
        get a new token when the server no longer takes this one (a sign-in's access token
        lasts minutes); each request renews at most once, and concurrent ones share a renewal.
        ``warn``: where the warning of a deprecated API version goes (default: this module's
        log, as a WARNING). ``on_release``: told the newest client release the server
        advertises. ``api_version``: the version to speak (tests speak older ones)."""
        self.servers = parse_servers(server)
        self._current = 0
        self.retry_for = retry_for
        self._renew = renew
        self._renewing = asyncio.Lock()
        self.api_version = api_version
        self._warn = warn or logger.warning
        self._warned_deprecated = False
        self._on_release = on_release
        # The newest client release the server last advertised (Fap-Client-Latest), if any.
        self.client_latest: str | None = None
        headers = {API_VERSION_HEADER: api_version, "User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if org:
            headers[ORG_HEADER] = org
        # Long-polls hold a request open for ~20 s; the read timeout leaves them room.
        # No base URL: each request names its replica. httpx pools connections per origin.
        self.http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(60.0, connect=10.0),
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            verify=tls_context(),
        )

    @property
    def server(self) -> str:
        """The replica requests go to now."""
        return self.servers[self._current]

    async def __aenter__(self) -> ApiSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    @overload
    async def call(
        self,
        method: str,
        path: str,
        body: Struct | None = ...,
        *,
        returns: type[T],
        params: dict[str, Any] | None = ...,
        retry_for: float | None = ...,
    ) -> T: ...

    @overload
    async def call(
        self,
        method: str,
        path: str,
        body: Struct | None = ...,
        *,
        returns: None = ...,
        params: dict[str, Any] | None = ...,
        retry_for: float | None = ...,
    ) -> None: ...

    async def call(
        self,
        method: str,
        path: str,
        body: Struct | None = None,
        *,
        returns: type[T] | None = None,
        params: dict[str, Any] | None = None,
        retry_for: float | None = None,
    ) -> T | None:
        """Send one API request; answer the decoded body, or None for 204 (a long-poll's "nothing")."""
        response = await self._send(method, path, body, params, retry_for)
        if response.status_code == 204 or returns is None:
            return None
        try:
            return msgspec.json.decode(response.content, type=returns)
        except msgspec.DecodeError as error:
            raise ServerError(
                f"The server's answer to {method} {path} was not understood: {error}."
            ) from error

    async def _send(
        self,
        method: str,
        path: str,
        body: Struct | None,
        params: dict[str, Any] | None,
        retry_for: float | None,
    ) -> httpx.Response:
        content = msgspec.json.encode(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else {}
        budget = self.retry_for if retry_for is None else retry_for
        deadline = time.monotonic() + budget
        replicas = len(self.servers)
        failures = 0
        renewed = False
        while True:
            index = self._current
            sent_with = self.http.headers.get("Authorization")
            try:
                response = await self.http.request(
                    method,
                    self.servers[index] + path,
                    content=content,
                    params=params,
                    headers=headers,
                )
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}"
            else:
                self._heed_versions(response)
                if response.status_code == 401 and self._renew is not None and not renewed:
                    renewed = True
                    await self._renew_token(sent_with)
                    continue
                if response.status_code not in _RETRYABLE_STATUS:
                    _raise_for_status(method, path, response)
                    return response
                problem = f"status {response.status_code}"
            failures += 1
            self._move_on(index, problem)
            rounds, rest = divmod(failures, replicas)
            if rest and rounds == 0:
                continue  # the first round: every replica gets its try, whatever the budget
            # Within a round, on to the next replica at once; after a whole round, a pause.
            delay = 0.0 if rest else _BETWEEN_ROUNDS.delay(rounds)
            if time.monotonic() + delay > deadline:
                raise ServerUnreachable(self._unreachable(problem, budget))
            await asyncio.sleep(delay)

    def _heed_versions(self, response: httpx.Response) -> None:
        """What the server says of versions: the newest client release, and whether the API
        version spoken here is on its way out (said once per session: every answer says it)."""
        latest = response.headers.get(CLIENT_LATEST_HEADER, "").strip()[:40]
        if latest and latest != self.client_latest:
            self.client_latest = latest
            if self._on_release is not None:
                self._on_release(latest)
        if self._warned_deprecated or DEPRECATION_HEADER not in response.headers:
            return
        self._warned_deprecated = True
        sunset = _day(response.headers.get(SUNSET_HEADER))
        until = f" and stops answering it on {sunset}" if sunset else ""
        self._warn(
            f"The server at {self.server} deprecated API version {self.api_version}, which this "
            f"fap speaks{until}: upgrade fap."
        )

    async def _renew_token(self, stale: str | None) -> None:
        assert self._renew is not None
        async with self._renewing:
            if self.http.headers.get("Authorization") != stale:
                return  # renewed by another request meanwhile: use that one
            self.http.headers["Authorization"] = f"Bearer {await self._renew()}"

    def _move_on(self, failed: int, problem: str) -> None:
        """Send later requests to the replica after ``failed``.

        Only the first of several requests failing on the same replica moves the pointer; the
        others find it moved already, so that concurrent failures do not skip a live replica.
        """
        if len(self.servers) == 1 or self._current != failed:
            return
        self._current = (failed + 1) % len(self.servers)
        logger.warning(
            "The server at %s did not answer (%s); trying %s.",
            self.servers[failed],
            problem,
            self.server,
        )

    def _unreachable(self, problem: str, budget: float) -> str:
        if len(self.servers) == 1:
            return (
                f"The server at {self.server} did not answer ({problem}) for {budget:g} s; "
                "check that it is running and that the address is right."
            )
        return (
            f"None of the servers {', '.join(self.servers)} answered (last: {problem}) for "
            f"{budget:g} s; check that they are running and that the addresses are right."
        )


def _raise_for_status(method: str, path: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _detail(response)
    if status == 401:
        raise AuthError(f"The server did not accept the token: {detail}.")
    if status == 403:
        raise AuthError(f"Not allowed: {detail}.")
    if status == 409:
        raise ConflictError(detail)
    raise ServerError(f"The server refused {method} {path} ({status}): {detail}.", status)


def _day(http_date: str | None) -> str | None:
    """The day of an HTTP date (``Sunset``), as YYYY-MM-DD; None for none or a malformed one."""
    if not http_date:
        return None
    try:
        return parsedate_to_datetime(http_date).date().isoformat()
    except (TypeError, ValueError):
        return None


def _detail(response: httpx.Response) -> str:
    try:
        return msgspec.json.decode(response.content, type=ErrorBody).detail.rstrip(".")
    except msgspec.DecodeError:
        text = response.text.strip().splitlines()
        return text[0][:200] if text else response.reason_phrase
