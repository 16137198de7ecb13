"""PUT and GET of blob bytes through presigned URLs, with bounded retries.

The URL carries all the authority: no credentials, no API token. Transient faults (a dropped
connection, a 5xx) are retried with backoff; a refusal (4xx: expired, tampered, too large) is not,
since sending the same request again cannot change the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from fap.backoff import Backoff
from fap.errors import ServerError, ServerUnreachable

__all__ = ("get_bytes", "put_bytes")

_ATTEMPTS = 5


_RETRY = Backoff(first=0.5, cap=8.0)


async def put_bytes(
    http: httpx.AsyncClient, url: str, data: bytes, headers: Mapping[str, str] | None = None
) -> None:
    """PUT ``data``, with the ``headers`` its URL was signed for (a checksum, the length)."""
    sent = httpx.Headers({"Content-Length": str(len(data))})
    sent.update(headers or {})  # case-insensitive: the signed headers win
    await _send(http, "PUT", url, data, sent)


async def get_bytes(http: httpx.AsyncClient, url: str) -> bytes:
    return await _send(http, "GET", url, None, {})


async def _send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    data: bytes | None,
    headers: Mapping[str, str] | httpx.Headers,
) -> bytes:
    last: str = ""
    for attempt in range(_ATTEMPTS):
        if attempt:
            await asyncio.sleep(_RETRY.delay(attempt))
        try:
            response = await http.request(method, url, content=data, headers=headers)
        except httpx.TransportError as error:
            last = f"{type(error).__name__}: {error}"
            continue
        if response.status_code < 300:
            return response.content
        if response.status_code < 500:
            raise ServerError(
                f"The object store refused a {method} with status {response.status_code}: "
                f"{_reason(response)}.",
                response.status_code,
            )
        last = f"status {response.status_code}"
    raise ServerUnreachable(
        f"The object store did not take a {method} after {_ATTEMPTS} attempts ({last})."
    )


def _reason(response: httpx.Response) -> str:
    text = response.text.strip().splitlines()
    return text[0][:200] if text else response.reason_phrase
