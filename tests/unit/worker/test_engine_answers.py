"""The result limit: an engine's answer past ``max_answer`` bytes is cut off there, whether it
says its length, streams it, or sends it compressed; an answer within it is the result."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from fap.api import FileMeta
from fap.errors import EngineError
from fap.worker.engine_client import EngineClient, ResultTooLarge

LIMIT = 64 * 1024
META = FileMeta(upload_id="u1", name="a.txt", size=0, sha256="0" * 64)

Answer = Callable[[dict[str, str]], list[bytes]]  # the request's headers → the answer's bytes


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


async def _engine(socket: Path, answer: Answer) -> asyncio.AbstractServer:
    """A fake engine: reads the request head (and a chunked empty body), sends ``answer``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers: dict[str, str] = {}
        await reader.readline()
        while (line := (await reader.readline()).decode().strip()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            await reader.readline()  # "0"
            await reader.readline()
        try:
            for part in answer(headers):
                writer.write(part)
                await writer.drain()
        except ConnectionError:
            pass  # cut off, as it should be
        finally:
            writer.close()

    return await asyncio.start_unix_server(serve, path=str(socket))


def _plain(body: bytes, **headers: str) -> list[bytes]:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return [
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{head}Connection: close\r\n\r\n".encode(),
        body,
    ]


def _streamed(parts: int, size: int) -> list[bytes]:
    chunk = b"x" * size
    return [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        *(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(parts)),
        b"0\r\n\r\n",
    ]


async def _analyze(tmp_path: Path, answer: Answer) -> bytes:
    socket = tmp_path / "engine.sock"
    server = await _engine(socket, answer)
    client = EngineClient(socket, max_answer=LIMIT)
    try:
        return await client.analyze(META, _empty())
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_an_answer_within_the_limit_is_the_result(tmp_path: Path) -> None:
    body = json.dumps({"padding": "x" * (LIMIT - 100)}).encode()
    assert await _analyze(tmp_path, lambda headers: _plain(body)) == body


async def test_an_answer_that_says_it_is_too_long_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    body = b'"' + b"x" * (4 * LIMIT) + b'"'
    with pytest.raises(ResultTooLarge, match=f"answered {len(body)} bytes"):
        await _analyze(tmp_path, lambda headers: _plain(body))


async def test_a_streamed_answer_is_cut_off_once_past_the_limit(tmp_path: Path) -> None:
    # A gigabyte announced by nothing but its chunks: the worker reads a little over the limit.
    with pytest.raises(ResultTooLarge, match=f"more than {LIMIT} bytes"):
        await _analyze(tmp_path, lambda headers: _streamed(parts=16 * 1024, size=64 * 1024))


async def test_the_worker_asks_for_no_compression_and_refuses_it(tmp_path: Path) -> None:
    asked: list[str] = []
    bomb = gzip.compress(b'"' + b"x" * (1024 * LIMIT) + b'"')  # small, and 64 MiB once inflated

    def answer(headers: dict[str, str]) -> list[bytes]:
        asked.append(headers.get("accept-encoding", ""))
        return _plain(bomb, **{"Content-Encoding": "gzip"})

    with pytest.raises(EngineError, match="Content-Encoding 'gzip'; it must answer plain JSON"):
        await _analyze(tmp_path, answer)
    assert asked == ["identity"]
