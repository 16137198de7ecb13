"""A presigned PUT goes out as one plain body of the length it was signed for — S3 refuses a
chunked one — however the client feeds the socket, and a retried PUT sends the whole body again."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from fap.backoff import Backoff
from fap.transfer import put_bytes
from fap.transfer.presigned import Retries

MiB = 1024 * 1024


class Received:
    def __init__(self) -> None:
        self.heads: list[dict[str, str]] = []
        self.bodies: list[bytes] = []


async def _store(received: Received, fail_first: int) -> AsyncIterator[str]:
    """A bare HTTP/1.1 server on loopback that records each PUT, one per connection; the first
    ``fail_first`` are answered 503."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # the request line
        head: dict[str, str] = {}
        while (header := (await reader.readline()).decode().strip()) != "":
            name, _, value = header.partition(":")
            head[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(head.get("content-length", "0")))
        received.heads.append(head)
        received.bodies.append(body)
        status = "503 Slow Down" if len(received.bodies) <= fail_first else "200 OK"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/bucket/chunk?X-Amz-Signature=abc"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("fail_first", [0, 1])
async def test_a_put_is_one_plain_body_of_its_length(fail_first: int) -> None:
    data = os.urandom(3 * MiB + 17)
    received = Received()
    quick = Retries(attempts=3, backoff=Backoff(first=0.01, cap=0.01, jitter=False))
    async for url in _store(received, fail_first):
        async with httpx.AsyncClient() as http:
            await put_bytes(http, url, data, {"x-amz-checksum-sha256": "c2lnbmVk"}, retries=quick)

    assert len(received.bodies) == fail_first + 1
    for head, body in zip(received.heads, received.bodies, strict=True):
        assert head["content-length"] == str(len(data))
        assert "transfer-encoding" not in head
        assert head["x-amz-checksum-sha256"] == "c2lnbmVk"
        assert body == data
