"""HTTP to the engine over its unix socket (``docs/engine-protocol.md``).

The client is the worker's view of the protocol: ``info()`` answers only an engine this worker can
drive — one that speaks a protocol version in ``SPOKEN_PROTOCOLS`` under a valid NAME@VERSION —
and raises EngineMismatch for any other, so no job is ever leased for it.

An engine is untrusted: one that answers a gigabyte of JSON, or a small gzip that inflates to one,
must cost the worker no more than the result limit (``max_answer``). So the client asks for no
compression, refuses a compressed answer, refuses at once an answer whose Content-Length is over
the limit, and counts the bytes of any other as they arrive.
"""

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
    ENGINE_NAME_RULE,
    FILE_NAME_HEADER,
    FILE_SHA256_HEADER,
    FILE_SIZE_HEADER,
    INFO,
    PROTOCOL_VERSION,
    UPLOAD_ID_HEADER,
    is_engine_name,
)
from fap.errors import EngineError

__all__ = (
    "SPOKEN_PROTOCOLS",
    "EngineClient",
    "EngineConnectionLost",
    "EngineInfo",
    "EngineMismatch",
    "ResultTooLarge",
)

# The engine protocol versions this worker drives. A worker that learns a new version keeps the
# old ones here for as long as engines written to them are about.
SPOKEN_PROTOCOLS: tuple[int, ...] = (PROTOCOL_VERSION,)


class EngineConnectionLost(EngineError):
    """The engine closed the connection without answering: it most likely died."""


class EngineMismatch(EngineError):
    """The engine answers, but not as one this worker can drive: another protocol version, or a
    name that is not NAME@VERSION. A configuration error: starting it again cannot help."""


class ResultTooLarge(EngineError):
    """The engine's answer holds more bytes than the result limit."""


class EngineInfo(msgspec.Struct):
    engine: str  # name@version
    protocol: int


class _Protocol(msgspec.Struct):
    """The one field of ``GET /v1/info`` that every protocol version keeps, read first: an engine
    of another version is told by its version, whatever else its answer holds."""

    protocol: int


class _ErrorAnswer(msgspec.Struct):
    error: str


@dataclass
class EngineClient:
    socket_path: Path
    max_connections: int = 8
    max_answer: int = 0  # bytes of an analysis answer; 0: no limit

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
        """``GET /v1/info`` of an engine this worker can drive; raises httpx.TransportError while
        nothing listens yet, EngineMismatch for an engine it cannot drive."""
        response = await self._http.get(INFO, timeout=timeout)
        if response.status_code != 200:
            raise EngineError(f"The engine answered GET {INFO} with status {response.status_code}.")
        try:
            protocol = msgspec.json.decode(response.content, type=_Protocol).protocol
        except msgspec.DecodeError as error:
            raise EngineMismatch(
                f"The engine's answer to GET {INFO} states no protocol version ({error})."
            ) from error
        if protocol not in SPOKEN_PROTOCOLS:
            name = _name_in(response.content)
            raise EngineMismatch(
                f"The engine{f' {name}' if name else ''} speaks engine protocol {protocol}, and "
                f"this worker speaks {_versions(SPOKEN_PROTOCOLS)}: update the older of the two."
            )
        try:
            info = msgspec.json.decode(response.content, type=EngineInfo)
        except msgspec.DecodeError as error:
            raise EngineMismatch(
                f"The engine's answer to GET {INFO} is not understood: {error}."
            ) from error
        if not is_engine_name(info.engine):
            raise EngineMismatch(
                f"The engine calls itself {info.engine[:100]!r}, which is not of the form "
                f"NAME@VERSION (for example size@1): {ENGINE_NAME_RULE}."
            )
        return info

    async def analyze(self, file: FileMeta, body: AsyncIterable[bytes]) -> bytes:
        """Stream ``body`` to ``POST /v1/analyze``; answer the engine's JSON result, as sent."""
        headers = {
            UPLOAD_ID_HEADER: file.upload_id,
            FILE_NAME_HEADER: quote(file.name, safe=""),
            FILE_SIZE_HEADER: str(file.size),
            FILE_SHA256_HEADER: file.sha256,
            "Accept-Encoding": "identity",
        }
        try:
            async with self._http.stream("POST", ANALYZE, content=body, headers=headers) as answer:
                content = await self._read(answer)
        except httpx.TransportError as error:
            raise EngineConnectionLost(
                f"The engine closed the connection without answering ({type(error).__name__})."
            ) from error
        if answer.status_code == 200:
            try:
                msgspec.json.decode(content)
            except msgspec.DecodeError:
                raise EngineError("The engine answered with something that is not JSON.") from None
            return content
        reason = _reason(content, answer.reason_phrase)
        if answer.status_code == 500:
            raise EngineError(f"The engine could not analyse the file: {reason}")
        raise EngineError(f"The engine refused the file ({answer.status_code}): {reason}")

    async def _read(self, answer: httpx.Response) -> bytes:
        """The answer's bytes as sent, no more than ``max_answer`` of them."""
        encoding = answer.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise EngineError(
                f"The engine answered with Content-Encoding {encoding[:40]!r}; it must answer "
                "plain JSON."
            )
        limit = self.max_answer
        declared = answer.headers.get("Content-Length", "")
        if limit and declared.isdigit() and int(declared) > limit:
            raise ResultTooLarge(f"The engine answered {declared} bytes.")
        parts: list[bytes] = []
        seen = 0
        async for part in answer.aiter_raw():
            seen += len(part)
            if limit and seen > limit:
                raise ResultTooLarge(f"The engine answered more than {limit} bytes.")
            parts.append(part)
        return b"".join(parts)


def _versions(versions: tuple[int, ...]) -> str:
    """``protocol 1``, ``protocols 1 and 2``, ``protocols 1, 2 and 3``."""
    if len(versions) == 1:
        return f"protocol {versions[0]}"
    *first, last = versions
    return f"protocols {', '.join(map(str, first))} and {last}"


def _name_in(content: bytes) -> str:
    """The engine's name, if its answer holds a usable one: for the sentence that refuses it."""
    try:
        engine = msgspec.json.decode(content, type=dict[str, object]).get("engine")
    except msgspec.DecodeError:
        return ""
    return engine if isinstance(engine, str) and is_engine_name(engine) else ""


def _reason(content: bytes, phrase: str) -> str:
    try:
        text = msgspec.json.decode(content, type=_ErrorAnswer).error
    except msgspec.DecodeError:
        text = content.decode(errors="replace")
    lines = text.strip().splitlines()
    line = lines[0][:300] if lines else phrase
    if line.split(" ", 1)[0].istitle():  # "The analyzer raised …" goes on as "…: the analyzer …"
        line = line[0].lower() + line[1:]
    return line if line.endswith(".") else f"{line}."
