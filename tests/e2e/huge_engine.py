"""An engine (engine protocol 1, the standard library alone) that answers every file with 1 GiB of
JSON, streamed as it is made: what a worker's result limit is for. ``fap engine`` could not send it
so: it encodes a result whole before it answers, within the engine's memory limit.

    python tests/e2e/huge_engine.py      # listens on $FAP_ENGINE_SOCKET, as engine huge@1
"""

from __future__ import annotations

import asyncio
import json
import os

ENGINE = "huge@1"
MiB = 1024 * 1024
ANSWER_MIB = 1024  # 1 GiB in all


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
    """Read the request's body to its end, chunked (as the worker sends it) or not."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()).strip():
                    pass  # trailers
                return
            await reader.readexactly(size + 2)
    elif length := int(headers.get("content-length", "0")):
        await reader.readexactly(length)


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = (await reader.readline()).decode()
        headers: dict[str, str] = {}
        while (line := (await reader.readline()).decode().strip()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        await _body(reader, headers)
        if request.startswith("GET /v1/info "):
            body = json.dumps({"engine": ENGINE, "protocol": 1}).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        await _chunk(writer, b"[")
        piece = b'"' + b"x" * (MiB - 4) + b'",'
        for _ in range(ANSWER_MIB):
            await _chunk(writer, piece)
        await _chunk(writer, b'"end"]')
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the worker hung up: it had heard enough
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_unix_server(_serve, path=os.environ["FAP_ENGINE_SOCKET"])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
