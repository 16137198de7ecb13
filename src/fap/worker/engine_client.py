"""HTTP to the engine over its unix socket (``docs/engine-protocol.md``)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import msgspec

from fap.api import FileMeta
from fap.engine.protocol import (
    ANALYZE,
    FILE_NAME_HEADER,
    FILE_SHA256_HEADER,
    FILE_SIZE_HEADER,
    INFO,
    UPLOAD_ID_HEADER,
)
from fap.errors import EngineError

__all__ = ("EngineClient", "EngineConnectionLost", "EngineInfo")


class EngineConnectionLost(EngineError):
    """The engine closed the connection without answering: it most likely died."""


class EngineInfo(msgspec.Struct):
    engine: str  # name@version
    protocol: int


class _ErrorAnswer(msgspec.Struct):
    error: str


@dataclass
class EngineClient:
    socket_path: Path
    max_connections: int = 8

    def __post_init__(self) -> None:
        # No keep-alive: a connection costs microseconds on a unix socket, and one kept across an
        # engine restart would fail the next analysis for no reason of its own.
        transport = httpx.AsyncHTTPTransport(
            uds=str(self.socket_path),
            limits=httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=0),
        )
        # No read timeout: an analysis may take hours; the job's own timeout bounds it.
        self._http = httpx.AsyncClient(
            transport=transport,
            base_url="http://engine",
            timeout=httpx.Timeout(None, connect=5.0),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def info(self, timeout: float = 2.0) -> EngineInfo:
        """``GET /v1/info``; raises httpx.TransportError while nothing listens yet."""
        response = await self._http.get(INFO, timeout=timeout)
        if response.status_code != 200:
            raise EngineError(f"The engine answered GET {INFO} with status {response.status_code}.")
        try:
            return msgspec.json.decode(response.content, type=EngineInfo)
        except msgspec.DecodeError as error:
            raise EngineError(
                f"The engine's answer to GET {INFO} is not understood: {error}."
            ) from error

    async def analyze(self, file: FileMeta, body: AsyncIterable[bytes]) -> bytes:
        """Stream ``body`` to ``POST /v1/analyze``; answer the engine's JSON result, as sent."""
        headers = {
            UPLOAD_ID_HEADER: file.upload_id,
            FILE_NAME_HEADER: quote(file.name, safe=""),
            FILE_SIZE_HEADER: str(file.size),
            FILE_SHA256_HEADER: file.sha256,
        }
        try:
            response = await self._http.post(ANALYZE, content=body, headers=headers)
        except httpx.TransportError as error:
            raise EngineConnectionLost(
                f"The engine closed the connection without answering ({type(error).__name__})."
            ) from error
        if response.status_code == 200:
            try:
                msgspec.json.decode(response.content)
            except msgspec.DecodeError:
                raise EngineError("The engine answered with something that is not JSON.") from None
            return response.content
        reason = _reason(response)
        if response.status_code == 500:
            raise EngineError(f"The engine could not analyse the file: {reason}")
        raise EngineError(f"The engine refused the file ({response.status_code}): {reason}")


def _reason(response: httpx.Response) -> str:
    try:
        text = msgspec.json.decode(response.content, type=_ErrorAnswer).error
    except msgspec.DecodeError:
        text = response.text
    lines = text.strip().splitlines()
    line = lines[0][:300] if lines else response.reason_phrase
    if line.split(" ", 1)[0].istitle():  # "The analyzer raised …" goes on as "…: the analyzer …"
        line = line[0].lower() + line[1:]
    return line if line.endswith(".") else f"{line}."
