"""A client that hangs up is normal — a long-poll given up, a process stopped: no ERROR line, and
no 5xx in ``fap_http_requests`` (which must count the server's faults only)."""

from __future__ import annotations

import asyncio
import logging

import msgspec
import pytest
from litestar.types import Message
from tests.unit.server.harness import CHUNK, Server
from tests.unit.server.test_metrics import scrape

from fap.api import JOB_CHUNKS, LEASE, UPLOADS_WAIT, LeaseRequest, UploadWait
from fap.server.auth import hash_token
from fap.server.problems import CLIENT_CLOSED_REQUEST
from fap.server.queue.notify import chunks_topic, queue_topic, upload_topic


async def asgi_call(
    server: Server, path: str, token: str, body: bytes, *, hang_up: asyncio.Event | None
) -> list[Message]:
    """POST ``body`` straight to the app; with ``hang_up``, the client is gone at once (before
    the body is read) if the event is set, else as soon as it is set."""
    sent: list[Message] = []
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if hang_up is not None and hang_up.is_set():
            return {"type": "http.disconnect"}
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        if hang_up is None:
            await asyncio.Event().wait()  # a client that stays: never returns
        assert hang_up is not None
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8700"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8700),
        "state": {},
    }
    await server.app(scope, receive, send)  # type: ignore[arg-type]
    return sent


def status_of(sent: list[Message]) -> int:
    (start,) = [message for message in sent if message["type"] == "http.response.start"]
    status: int = start["status"]
    return status


async def long_polls(server: Server) -> list[tuple[str, str, bytes, str]]:
    """Each long-poll of the API: path, token, body, and the topic it waits on."""
    owner = await server.services.store.credentials.resolve(
        hash_token(server.owner), server.clock()
    )
    assert owner is not None
    info = await server.upload(server.owner, b"x" * 10)
    # A job of two chunks with one stored: a poll for the chunks after the first waits.
    created = await server.create_upload(server.owner, b"y" * (CHUNK + 1))
    await server.send_chunk(server.owner, created, b"y" * (CHUNK + 1), 0)
    lease = await server.lease()
    assert lease is not None
    second = await server.lease()
    assert second is not None and second.job_id == created.upload.id
    return [
        (
            UPLOADS_WAIT,
            server.owner,
            msgspec.json.encode(UploadWait(ids=[info.id], timeout=60)),
            upload_topic(info.id),
        ),
        (
            LEASE,
            server.processor,
            msgspec.json.encode(LeaseRequest(worker_id="w", engines=["size@1"], timeout=60)),
            queue_topic(owner.org.id),
        ),
        (
            JOB_CHUNKS.format(job_id=second.job_id),
            server.processor,
            msgspec.json.encode({"lease_token": second.lease_token, "after": 0, "timeout": 60}),
            chunks_topic(second.job_id),
        ),
    ]


async def no_5xx_and_no_error_logged(
    server: Server, caplog: pytest.LogCaptureFixture, routes: list[str]
) -> None:
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    _, samples = await scrape(server)
    for (name, labels), count in samples.items():
        if name == "fap_http_requests_total" and dict(labels).get("route") in routes:
            assert dict(labels)["status"] != "5xx", (labels, count)


async def test_a_client_gone_before_its_body_was_read_is_no_error(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    gone = asyncio.Event()
    gone.set()
    for path, token, body, _ in await long_polls(server):
        sent = await asgi_call(server, path, token, body, hang_up=gone)
        assert status_of(sent) == CLIENT_CLOSED_REQUEST
    await no_5xx_and_no_error_logged(server, caplog, [UPLOADS_WAIT, LEASE, JOB_CHUNKS])


async def test_a_client_that_hangs_up_on_a_long_poll_ends_it_at_once(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """The poll stops waiting (its timeout is a minute: the test's own would end it first)."""
    for path, token, body, topic in await long_polls(server):
        gone = asyncio.Event()
        call = asyncio.create_task(asgi_call(server, path, token, body, hang_up=gone))
        async with asyncio.timeout(5):
            while not server.notifier.waiting(topic):
                await asyncio.sleep(0.005)
        gone.set()
        async with asyncio.timeout(5):
            sent = await call
        assert status_of(sent) == CLIENT_CLOSED_REQUEST
        assert not server.notifier.waiting(topic)
    await no_5xx_and_no_error_logged(server, caplog, [UPLOADS_WAIT, LEASE, JOB_CHUNKS])
