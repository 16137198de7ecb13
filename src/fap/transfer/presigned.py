"""PUT and GET of blob bytes through presigned URLs, riding out an object store that falls over.

The URL carries all the authority: no credentials, no API token. Transient faults (a dropped
connection, a 5xx) are retried with backoff; a refusal (4xx: expired, tampered, too large) is not,
since sending the same request again cannot change the answer.

How long to retry is the caller's to say (:class:`Retries`). By default a few attempts, about 8 s:
a client has its journal to try again later. A worker holding a lease says "while I hold it": an
outage of the object store is then waited out rather than spent as one of the job's attempts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import httpx

from fap.backoff import Backoff
from fap.errors import ServerError, ServerUnreachable

__all__ = ("Retries", "get_bytes", "put_bytes")

logger = logging.getLogger(__name__)

# 0.5, 1, 2, 4 s between five attempts: about 8 s, over a restart of the store or a load balancer.
_BACKOFF = Backoff(first=0.5, cap=8.0)
# A PUT's body goes out in pieces of this size, each written once the socket took the last: given
# whole, the transport would copy what the socket does not take at once (most of a chunk) into a
# buffer of its own, a second copy of every chunk in flight.
_PIECE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Retries:
    """How a transfer retries an object store that does not answer (a dropped connection, a 5xx).

    ``attempts`` in all, waiting by ``backoff`` between them; past those, as long as ``go_on()``
    answers True (None: never). Jittered: every worker and client of one store lost it together.
    """

    attempts: int = 5
    backoff: Backoff = _BACKOFF
    go_on: Callable[[], bool] | None = None

    def another(self, attempt: int) -> bool:
        """Whether to try again after ``attempt`` failed attempts."""
        if attempt < self.attempts:
            return True
        return self.go_on is not None and self.go_on()


_BOUNDED = Retries()


async def put_bytes(
    http: httpx.AsyncClient,
    url: str,
    data: bytes | memoryview,
    headers: Mapping[str, str] | None = None,
    *,
    retries: Retries = _BOUNDED,
) -> None:
    """PUT ``data``, with the ``headers`` its URL was signed for (a checksum, the length)."""
    # With its length given, httpx sends the pieces as one plain body, not chunked.
    sent = httpx.Headers({"Content-Length": str(len(data))})
    sent.update(headers or {})  # case-insensitive: the signed headers win
    await _send(http, "PUT", url, data, sent, retries)


async def get_bytes(
    http: httpx.AsyncClient,
    url: str,
    *,
    retries: Retries = _BOUNDED,
    byte_range: tuple[int, int] | None = None,
) -> bytes:
    """GET the object, or with ``byte_range`` (offset, length) exactly those bytes of it: one
    chunk out of a pack. A store's answer of any other number of bytes is a ServerError."""
    if byte_range is None:
        return (await _send(http, "GET", url, None, {}, retries)).content
    offset, length = byte_range
    if offset < 0 or length < 1:
        raise ValueError(
            f"A byte range needs an offset of 0 or more and a length of 1 or more, not {byte_range}."
        )
    last = offset + length - 1
    response = await _send(http, "GET", url, None, {"Range": f"bytes={offset}-{last}"}, retries)
    data = response.content
    if response.status_code == 200:
        # The whole object: RFC 9110 lets any server ignore Range, and some do. The range is cut
        # out of it here, at the cost of the whole pack on the wire and in memory for one chunk.
        data = data[offset : offset + length]
    elif response.status_code != 206:
        raise ServerError(
            f"The object store answered a GET of bytes {offset}-{last} with status "
            f"{response.status_code}, neither the range (206) nor the whole object (200).",
            response.status_code,
        )
    if len(data) != length:
        raise ServerError(
            f"The object store answered a GET of bytes {offset}-{last} with {len(data)} bytes, "
            f"not {length}: the object is shorter than the range, or the store cut it.",
            response.status_code,
        )
    return data


async def _send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    data: bytes | memoryview | None,
    headers: Mapping[str, str] | httpx.Headers,
    retries: Retries,
) -> httpx.Response:
    attempt = 0
    while True:
        if attempt:
            await asyncio.sleep(retries.backoff.delay(attempt))
        attempt += 1
        content = None if data is None else _pieces(data)  # afresh for every attempt
        try:
            response = await http.request(method, url, content=content, headers=headers)
        except httpx.TransportError as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if response.status_code < 300:
                if attempt > retries.attempts:
                    logger.info("The object store took a %s again, at attempt %d.", method, attempt)
                return response
            if response.status_code < 500:
                raise ServerError(
                    f"The object store refused a {method} with status {response.status_code}: "
                    f"{_reason(response)}.",
                    response.status_code,
                )
            last = f"status {response.status_code}"
        if not retries.another(attempt):
            raise ServerUnreachable(
                f"The object store did not take a {method} after {attempt} attempts ({last})."
            )
        if attempt == retries.attempts:
            # Once per transfer, not per attempt: an outage of minutes would fill the log. (The
            # URL is never logged: its query is the signature.)
            logger.warning(
                "The object store did not take a %s after %d attempts (%s); trying on.",
                method,
                attempt,
                last,
            )


async def _pieces(data: bytes | memoryview) -> AsyncIterator[bytes]:
    for start in range(0, len(data), _PIECE):
        yield bytes(data[start : start + _PIECE])


def _reason(response: httpx.Response) -> str:
    text = response.text.strip().splitlines()
    return text[0][:200] if text else response.reason_phrase
