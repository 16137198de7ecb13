"""The worker's check of ``GET /v1/info``: it drives only engines that speak a protocol version it
speaks, under a NAME@VERSION; any other is refused in one sentence, as a configuration error.

The engine here is a few lines of asyncio on a real unix socket, answering what a test tells it:
an engine in any language is nothing more, to the client.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from fap.errors import EXIT_ENGINE, EngineError
from fap.worker.engine_client import SPOKEN_PROTOCOLS, EngineClient, EngineInfo, EngineMismatch

# engine_answering(status, body) -> a client of an engine that answers every request so.
EngineAnswering = Callable[[int, bytes], AbstractAsyncContextManager[EngineClient]]


@pytest.fixture
def engine_answering() -> EngineAnswering:
    @asynccontextmanager
    async def serve(status: int, body: bytes) -> AsyncIterator[EngineClient]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")  # a GET: no body
            head = (
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        # AF_UNIX paths hold ~107 bytes: pytest's tmp_path can be too long.
        directory = Path(tempfile.mkdtemp(prefix="fap-", dir="/tmp"))
        server = await asyncio.start_unix_server(answer, path=directory / "engine.sock")
        client = EngineClient(directory / "engine.sock")
        try:
            async with server:
                yield client
        finally:
            await client.aclose()
            shutil.rmtree(directory, ignore_errors=True)

    return serve


def _info(**fields: object) -> bytes:
    return json.dumps(fields).encode()


async def test_an_engine_of_a_spoken_protocol_is_answered_with_its_info(
    engine_answering: EngineAnswering,
) -> None:
    assert SPOKEN_PROTOCOLS == (1,)
    body = _info(engine="filetype@1", protocol=1, extra="ignored")
    async with engine_answering(200, body) as client:
        assert await client.info() == EngineInfo(engine="filetype@1", protocol=1)


async def test_an_engine_of_another_protocol_is_refused_in_one_sentence(
    engine_answering: EngineAnswering,
) -> None:
    async with engine_answering(200, _info(engine="future@1", protocol=99)) as client:
        with pytest.raises(EngineMismatch) as refused:
            await client.info()
    assert str(refused.value) == (
        "The engine future@1 speaks engine protocol 99, and this worker speaks protocol 1: "
        "update the older of the two."
    )
    assert isinstance(refused.value, EngineError)
    assert refused.value.exit_code == EXIT_ENGINE


async def test_the_protocol_is_read_first_whatever_else_the_answer_holds(
    engine_answering: EngineAnswering,
) -> None:
    # A later protocol may shape its answer otherwise: its version is still told.
    body = _info(name={"family": "future", "version": 3}, protocol=2)
    async with engine_answering(200, body) as client:
        with pytest.raises(EngineMismatch, match=r"^The engine speaks engine protocol 2, and"):
            await client.info()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (_info(engine="size@1"), "states no protocol version"),
        (_info(engine="size@1", protocol="1"), "states no protocol version"),
        (b"[1]", "states no protocol version"),
        (b"not json", "states no protocol version"),
        (_info(protocol=1), "is not understood"),
        (
            _info(engine="wordcount", protocol=1),
            "calls itself 'wordcount', which is not of the form NAME@VERSION",
        ),
        (_info(engine="a b@1", protocol=1), "not of the form NAME@VERSION"),
    ],
    ids=[
        "no-protocol",
        "protocol-as-text",
        "not-an-object",
        "not-json",
        "no-engine",
        "no-version",
        "space",
    ],
)
async def test_an_answer_the_worker_cannot_use_says_what_is_wrong(
    engine_answering: EngineAnswering, body: bytes, says: str
) -> None:
    async with engine_answering(200, body) as client:
        with pytest.raises(EngineMismatch, match=says):
            await client.info()


async def test_an_info_answered_with_an_error_status_is_an_engine_error(
    engine_answering: EngineAnswering,
) -> None:
    async with engine_answering(503, _info(error="still loading")) as client:
        with pytest.raises(EngineError, match=r"answered GET /v1/info with status 503"):
            await client.info()
