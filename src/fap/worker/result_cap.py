"""The engine client, with the result limit: an answer larger than ``max_answer`` bytes is cut off
there, never read whole into the worker's memory.

An engine is untrusted: one that answers a gigabyte of JSON, or a small gzip that inflates to one,
must cost the worker no more than the limit. So the worker asks for no compression, refuses a
compressed answer, refuses at once an answer whose Content-Length is over the limit, and counts
the bytes of any other as they arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from fap.engine.protocol import ANALYZE
from fap.errors import EngineError
from fap.worker.engine_client import EngineClient

__all__ = ("CappedEngineClient", "ResultTooLarge")


class ResultTooLarge(EngineError):
    """The engine's answer holds more bytes than the result limit."""


@dataclass
class CappedEngineClient(EngineClient):
    max_answer: int = 0  # bytes of an analysis answer; 0: no limit

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_answer:
            hooks = self._http.event_hooks
            hooks["request"].append(_plain)
            hooks["response"].append(self._cap)

    async def _cap(self, response: httpx.Response) -> None:
        if response.request.url.path != ANALYZE:
            return
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise EngineError(
                f"The engine answered with Content-Encoding {encoding[:40]!r}; it must answer "
                "plain JSON."
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_answer:
            raise ResultTooLarge(f"The engine answered {declared} bytes.")
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _Counted(response.stream, self.max_answer)


async def _plain(request: httpx.Request) -> None:
    request.headers["Accept-Encoding"] = "identity"


class _Counted(httpx.AsyncByteStream):
    """The answer's bytes as they arrive, until there are more than ``limit``."""

    def __init__(self, stream: httpx.AsyncByteStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for part in self._stream:
            seen += len(part)
            if seen > self._limit:
                raise ResultTooLarge(f"The engine answered more than {self._limit} bytes.")
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()
