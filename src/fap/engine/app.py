"""The engine's ASGI app: ``GET /v1/info`` and ``POST /v1/analyze`` over protocol version 1.

Each analysis runs the analyzer in a thread of its own, fed from the receive loop through a
BodyPipe. Threads rather than a pool: an analyzer that hangs must not use up a pool that other
analyses need, and daemon threads do not keep a stopping engine alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from fap.engine.errors import one_line
from fap.engine.pipe import BodyAborted, BodyPipe, BodyStream
from fap.engine.protocol import (
    ANALYZE,
    FILE_NAME_HEADER,
    FILE_SHA256_HEADER,
    FILE_SIZE_HEADER,
    INFO,
    PROTOCOL_VERSION,
    UPLOAD_ID_HEADER,
)
from fap.engine.sdk import Analyzer, FileMeta

__all__ = ("EngineApp",)

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Bytes that may wait between the socket and the analyzer: enough to keep a reader busy while the
# loop fetches the next message, small enough that a hundred analyses stay well under 100 MiB.
PIPE_LIMIT = 1024 * 1024
# The analyzer reads through a buffer of this size; reads of any size work, big ones work best.
READ_BUFFER = 256 * 1024

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class BadRequest(Exception):
    """The request breaks the protocol; ``str()`` is the sentence answered with 400."""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes


class EngineApp:
    def __init__(self, analyzer: Analyzer, engine: str) -> None:
        self.analyzer = analyzer
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not spoken
        method, path = scope["method"], scope["path"]
        if path == INFO:
            if method != "GET":
                await _respond(send, 405, {"error": f"{INFO} answers GET only."}, allow="GET")
                return
            info = {"engine": self.engine, "protocol": PROTOCOL_VERSION}
            await _respond(send, 200, info)
        elif path == ANALYZE:
            if method != "POST":
                await _respond(send, 405, {"error": f"{ANALYZE} answers POST only."}, allow="POST")
                return
            await self._analyze(scope, receive, send)
        else:
            error = f"There is no {path}; this engine answers GET {INFO} and POST {ANALYZE}."
            await _respond(send, 404, {"error": error})

    async def _analyze(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            meta = parse_meta(scope["headers"])
        except BadRequest as error:
            await _send_answer(send, _error(400, str(error)), close=True)
            return
        loop = asyncio.get_running_loop()
        pipe = BodyPipe(PIPE_LIMIT)
        answer: asyncio.Future[_Answer | None] = loop.create_future()
        thread = threading.Thread(
            target=self._run_analyzer,
            args=(pipe, meta, loop, answer),
            name=f"analyze-{meta.upload_id}",
            daemon=True,
        )
        thread.start()
        pump = asyncio.create_task(_pump(receive, pipe, meta.size))
        try:
            first: set[asyncio.Future[Any]] = {pump, answer}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not pump.done():
                early = answer.result()
                if early is None or early.status != 200:
                    # The analysis failed before the body ended: answer now and close, so the
                    # worker stops sending a body nobody reads.
                    pump.cancel()
                    pipe.abort("the analysis already failed")
                    if early is not None:
                        await _send_answer(send, early, close=True)
                    return
                pipe.discard()  # the analyzer returned without reading everything: that is fine
            try:
                await pump
            except _Disconnected:
                pipe.abort("the worker disconnected before the body was complete")
                return
            except BadRequest as error:
                pipe.abort(str(error))
                await _send_answer(send, _error(400, str(error)), close=True)
                return
            final = await _unless_disconnected(answer, receive)
            if final is not None:
                await _send_answer(send, final)
        finally:
            pump.cancel()
            if not answer.done():
                pipe.abort("the request was cancelled")

    def _run_analyzer(
        self,
        pipe: BodyPipe,
        meta: FileMeta,
        loop: asyncio.AbstractEventLoop,
        answer: asyncio.Future[_Answer | None],
    ) -> None:
        result: _Answer | None
        try:
            value = self.analyzer(io.BufferedReader(BodyStream(pipe), READ_BUFFER), meta)
        except BodyAborted:
            result = None  # the request is answered (or gone) already; nobody waits for this
        except BaseException as error:
            # An analyzer is foreign code: whatever it raises, SystemExit included, is a 500 whose
            # one line becomes the job's error, logged by the worker. The engine's output is the
            # worker's log, so the traceback goes there only at debug level (fap engine -v):
            # an analyzer that refuses a file is a job's failure, not the processor's.
            reason = one_line(error)
            logger.info(
                "Upload %s (%s): the analyzer raised %s.", meta.upload_id, meta.name, reason
            )
            logger.debug("The analyzer's traceback, upload %s:", meta.upload_id, exc_info=True)
            result = _error(500, f"The analyzer raised {reason}.")
        else:
            result = _encode(value, meta)
        # The loop is gone when the engine stopped while this analysis ran; nobody waits then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, answer, result)


class _Disconnected(Exception):
    """The worker went away before the body was complete."""


async def _pump(receive: Receive, pipe: BodyPipe, size: int) -> None:
    """Move the body into the pipe; BadRequest when it does not hold exactly ``size`` bytes."""
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > size:
            raise BadRequest(
                f"The body is longer than the {size} bytes {FILE_SIZE_HEADER} announced."
            )
        await pipe.write(chunk)
        if not message.get("more_body", False):
            break
    if received != size:
        raise BadRequest(
            f"The body holds {received} bytes where {FILE_SIZE_HEADER} announced {size}."
        )
    pipe.close()


async def _unless_disconnected(
    answer: asyncio.Future[_Answer | None], receive: Receive
) -> _Answer | None:
    """The analysis' answer, or None if the worker goes away first (it gave up on this one)."""
    # The body is complete, so the next message can only be http.disconnect.
    gone: asyncio.Future[Message] = asyncio.ensure_future(receive())
    try:
        first: set[asyncio.Future[Any]] = {answer, gone}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    return answer.result() if answer.done() else None


def parse_meta(headers: list[tuple[bytes, bytes]]) -> FileMeta:
    """The file's metadata from the request headers; BadRequest names the first bad one."""
    values = {name.decode("latin-1").lower(): value for name, value in headers}

    def header(name: str) -> str:
        raw = values.get(name.lower())
        if raw is None or not raw.strip():
            raise BadRequest(f"The {name} header is missing.")
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise BadRequest(
                f"The {name} header is not ASCII; percent-encode its UTF-8 bytes."
            ) from None

    upload_id = header(UPLOAD_ID_HEADER)
    try:
        name = unquote(header(FILE_NAME_HEADER), errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"The {FILE_NAME_HEADER} header is not percent-encoded UTF-8.") from None
    size_text = header(FILE_SIZE_HEADER)
    if not size_text.isascii() or not size_text.isdigit():
        raise BadRequest(f"The {FILE_SIZE_HEADER} header is not a whole number of bytes.")
    sha256 = header(FILE_SHA256_HEADER)
    if not _SHA256.fullmatch(sha256):
        raise BadRequest(f"The {FILE_SHA256_HEADER} header is not 64 hexadecimal digits.")
    return FileMeta(upload_id=upload_id, name=name, size=int(size_text), sha256=sha256.lower())


def _settle(future: asyncio.Future[_Answer | None], result: _Answer | None) -> None:
    if not future.done():
        future.set_result(result)


def _encode(value: object, meta: FileMeta) -> _Answer:
    """The analyzer's result as the 200 body, or the 500 that says why it is not JSON."""
    try:
        # UTF-8 as it is, not \u escapes; no NaN or Infinity, which JSON does not have.
        body = json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError, RecursionError) as error:
        # TypeError: a set, bytes, an object; ValueError: NaN, a circular reference, a lone
        # surrogate in a str (UnicodeEncodeError); RecursionError: nesting too deep to encode.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        logger.info(
            "Upload %s (%s): the analyzer's result is not JSON: %s.",
            meta.upload_id,
            meta.name,
            reason,
        )
        return _error(500, f"The analyzer returned a value that is not JSON: {reason}.")
    return _Answer(200, body)


def _error(status: int, message: str) -> _Answer:
    return _Answer(status, json.dumps({"error": message}, ensure_ascii=False).encode())


async def _send_answer(
    send: Send, answer: _Answer, *, close: bool = False, allow: str = ""
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(answer.body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _respond(send: Send, status: int, body: dict[str, Any], *, allow: str = "") -> None:
    answer = _Answer(status, json.dumps(body, ensure_ascii=False).encode())
    await _send_answer(send, answer, allow=allow)
