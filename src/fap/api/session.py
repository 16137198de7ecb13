"""An authenticated session with a fap server, shared by the client and the worker.

It speaks the wire messages of :mod:`fap.api.messages`, sends the API version and the bearer token,
turns error answers into the :mod:`fap.errors` tree, and rides out a server that is briefly away:
connection failures and 502/503/504 are retried with jittered backoff for ``retry_for`` seconds.
"""

from __future__ import annotations

import asyncio
import random
import time
from types import TracebackType
from typing import Any, TypeVar, overload

import httpx
import msgspec

from fap.api.messages import ErrorBody, Struct
from fap.api.paths import API_VERSION, API_VERSION_HEADER
from fap.errors import AuthError, ConflictError, ServerError, ServerUnreachable

__all__ = ("ApiSession",)

T = TypeVar("T")

_RETRYABLE_STATUS = frozenset({502, 503, 504})


class ApiSession:
    def __init__(
        self,
        server: str,
        token: str | None,
        *,
        retry_for: float = 30.0,
        user_agent: str = "fap",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.retry_for = retry_for
        headers = {API_VERSION_HEADER: API_VERSION, "User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # Long-polls hold a request open for ~20 s; the read timeout leaves them room.
        self.http = httpx.AsyncClient(
            base_url=self.server,
            headers=headers,
            timeout=httpx.Timeout(60.0, connect=10.0),
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

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
        attempt = 0
        while True:
            try:
                response = await self.http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}"
            else:
                if response.status_code not in _RETRYABLE_STATUS:
                    _raise_for_status(method, path, response)
                    return response
                problem = f"status {response.status_code}"
            attempt += 1
            delay = min(5.0, 0.2 * 2**attempt) * (0.5 + random.random())  # noqa: S311
            if time.monotonic() + delay > deadline:
                raise ServerUnreachable(
                    f"The server at {self.server} did not answer ({problem}) for {budget:g} s; "
                    "check that it is running and that the address is right."
                )
            await asyncio.sleep(delay)


def _raise_for_status(method: str, path: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _detail(response)
    if status == 401:
        raise AuthError(f"The server did not accept the token: {detail}. Check FAP_TOKEN.")
    if status == 403:
        raise AuthError(f"Not allowed: {detail}.")
    if status == 409:
        raise ConflictError(detail)
    raise ServerError(f"The server refused {method} {path} ({status}): {detail}.", status)


def _detail(response: httpx.Response) -> str:
    try:
        return msgspec.json.decode(response.content, type=ErrorBody).detail.rstrip(".")
    except msgspec.DecodeError:
        text = response.text.strip().splitlines()
        return text[0][:200] if text else response.reason_phrase
