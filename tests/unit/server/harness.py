"""An in-process fap server for tests: the real app on httpx's ASGI transport, a clock the test
moves, and helpers that speak the API as a client and as a worker would."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
from litestar import Litestar

from fap.api import (
    CHUNK_URLS,
    CHUNKS,
    DEVICES,
    INVITATIONS,
    JOB_FAIL,
    LEASE,
    LEASES,
    ORGS,
    TOKENS,
    UPLOAD,
    UPLOADS,
    ChunkReport,
    ChunkSpec,
    ChunkUrl,
    ChunkUrlsRequest,
    DeviceRegistration,
    ErrorBody,
    FailRequest,
    Invitation,
    Lease,
    LeaseRequest,
    Leases,
    LeasesRequest,
    OrgCreate,
    OrgInfo,
    Role,
    Struct,
    TokenCreate,
    TokenCreated,
    UploadCreate,
    UploadCreated,
    UploadInfo,
)
from fap.config import ServerSettings
from fap.crypto import DeviceIdentity
from fap.server import Services, create_app, services_of
from fap.server.auth import LOCAL_ORG
from fap.server.auth.sessions import start_session
from fap.server.queue.notify import LocalNotifier, leases_topic
from fap.server.queue.notify_pg import PgNotifier
from fap.server.store import Identity
from fap.transfer import EncodedChunk, encode_chunk

T = TypeVar("T")

KiB = 1024
CHUNK = 64 * KiB
BASE = "http://127.0.0.1:8700"
# The identity provider the harness's sign-ins claim (see Server.sign_in).
TEST_ISSUER = "https://idp.example"


def error_body(response: httpx.Response) -> ErrorBody:
    """The ErrorBody of a refusal; every non-2xx answer must be one."""
    assert response.status_code >= 400, response.text
    body = msgspec.json.decode(response.content, type=ErrorBody)
    assert body.status_code == response.status_code
    assert body.detail.endswith((".", "?")), body.detail
    return body


class FakeClock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()
        # Called after each move: the server's timers (the sweeper's) read the clock again.
        self.on_advance: list[Callable[[], object]] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for moved in self.on_advance:
            moved()


BACKENDS = ("sqlite", "postgresql")
# For a module whose tests exercise the store: each runs on SQLite and on PostgreSQL (the
# ``backend`` fixture of conftest.py; other modules run on SQLite alone).
both_backends = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


def settings_for_tests(data_dir: Path, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "lease_seconds": 30.0,
        "heartbeat_seconds": 10.0,
        "max_attempts": 3,
        "long_poll_seconds": 5.0,
        # The tests sweep by hand, at the moments they choose.
        "sweep_seconds": 3600.0,
        **overrides,
    }
    return ServerSettings(**values)


@dataclass
class Server:
    app: Litestar
    services: Services
    clock: FakeClock
    http: httpx.AsyncClient
    owner: str
    processor: str
    devices: dict[str, DeviceIdentity] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # organisation -> its owner's token

    @property
    def settings(self) -> ServerSettings:
        return self.services.settings

    @property
    def notifier(self) -> LocalNotifier | PgNotifier:
        assert isinstance(self.services.notifier, LocalNotifier | PgNotifier)
        return self.services.notifier

    # -- raw HTTP ------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Struct | bytes | dict[str, Any] | list[Any] | None = None,
        **params: Any,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if isinstance(body, bytes):
            content = body
        elif body is None:
            content = None
        else:
            content = msgspec.json.encode(body)
        return await self.http.request(
            method, path, content=content, headers=headers, params=params or None
        )

    async def ok(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Struct | dict[str, Any] | None = None,
        *,
        returns: type[T],
        **params: Any,
    ) -> T:
        response = await self.call(method, path, token, body, **params)
        assert response.status_code < 300, response.text
        return msgspec.json.decode(response.content, type=returns)

    # -- accounts ------------------------------------------------------------------------------

    async def sign_in(self, email: str, *, verified: bool = True) -> str:
        """Someone signs in whose identity provider vouched for ``email``: their access token.

        What the sign-in route does once it has verified an ID token (its own tests run a real
        identity provider); invitations to the email are accepted by it.
        """
        store, now = self.services.store, self.clock()
        identity = Identity(TEST_ISSUER, email, email, verified, email.partition("@")[0])
        signed_in = await store.accounts.sign_in(identity, None, now)
        return (await start_session(store, signed_in.user, TEST_ISSUER, now)).access_token

    async def new_org(self, name: str) -> tuple[str, str]:
        """Another organisation, made through the API by a new user: its owner's access token,
        and a processor token."""
        owner = await self.sign_in(f"owner@{name}.example")
        await self.ok("POST", ORGS, owner, OrgCreate(name=name), returns=OrgInfo)
        self.owners[name] = owner
        processor = await self.ok(
            "POST",
            TOKENS.format(org=name),
            owner,
            TokenCreate(name="worker", role="processor"),
            returns=TokenCreated,
        )
        return owner, processor.token

    async def new_user(self, org: str | None, name: str, role: Role) -> str:
        """A new member of ``org`` (None: the local one) with ``role``, invited by its owner
        through the API and joined by signing in: their access token."""
        org = org or LOCAL_ORG
        email = f"{name}@{org}.example"
        await self.ok(
            "POST",
            INVITATIONS.format(org=org),
            self.owners.get(org, self.owner),
            Invitation(email=email, role=role),
            returns=dict,
        )
        return await self.sign_in(email)

    async def register_device(self, token: str) -> DeviceIdentity:
        identity = DeviceIdentity.generate()
        await self.ok(
            "POST",
            DEVICES,
            token,
            DeviceRegistration(name="laptop", recipient=identity.recipient),
            returns=dict,
        )
        self.devices[token] = identity
        return identity

    # -- the client's side of an upload --------------------------------------------------------

    async def create_upload(
        self, token: str, data: bytes, *, name: str = "report.csv", engine: str | None = None
    ) -> UploadCreated:
        if token not in self.devices:
            await self.register_device(token)
        return await self.ok(
            "POST",
            UPLOADS,
            token,
            UploadCreate(
                name=name,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                engine=engine,
                chunk_size=CHUNK,
            ),
            returns=UploadCreated,
        )

    async def chunk_url(self, token: str, upload_id: str, chunk: EncodedChunk) -> ChunkUrl:
        """The presigned PUT for one encoded chunk, signed for its size and SHA-256."""
        spec = ChunkSpec(seq=chunk.seq, size=chunk.stored_size, sha256=chunk.sha256)
        (url,) = await self.ok(
            "POST",
            CHUNK_URLS.format(upload_id=upload_id),
            token,
            ChunkUrlsRequest(chunks=[spec]),
            returns=list[ChunkUrl],
        )
        return url

    async def send_chunk(
        self, token: str, created: UploadCreated, data: bytes, seq: int
    ) -> httpx.Response:
        """PUT chunk ``seq`` of ``data`` to its presigned URL and report it."""
        encoded = encode_chunk(seq, data[seq * CHUNK : (seq + 1) * CHUNK])
        url = await self.chunk_url(token, created.upload.id, encoded)
        put = await self.http.put(url.url, content=encoded.data, headers=url.headers)
        assert put.status_code == 200, put.text
        return await self.call(
            "POST",
            CHUNKS.format(upload_id=created.upload.id),
            token,
            ChunkReport(
                seq=seq,
                raw_size=encoded.raw_size,
                stored_size=encoded.stored_size,
                codec="zstd" if encoded.codec == "zstd" else "raw",
                sha256=encoded.sha256,
            ),
        )

    async def upload(self, token: str, data: bytes, **kwargs: Any) -> UploadInfo:
        """A whole upload: create it, store and report every chunk."""
        created = await self.create_upload(token, data, **kwargs)
        for seq in range(created.upload.chunk_count):
            response = await self.send_chunk(token, created, data, seq)
            assert response.status_code == 200, response.text
        path = UPLOAD.format(upload_id=created.upload.id)
        return await self.ok("GET", path, token, returns=UploadInfo)

    # -- the worker's side ---------------------------------------------------------------------

    async def lease(
        self,
        token: str | None = None,
        *,
        engines: list[str] | None = None,
        worker_id: str = "worker-1",
        timeout: float = 0.0,
        request_id: str | None = None,
        packs: bool = False,
    ) -> Lease | None:
        """One job, as a worker leases it: by default as one older than packs does (POST
        /v1/lease), with ``packs`` as ``fap work`` does (POST /v1/leases, jobs in packs too)."""
        engines = engines or ["size@1"]
        body: LeaseRequest | LeasesRequest = LeaseRequest(
            worker_id=worker_id, engines=engines, timeout=timeout, request_id=request_id
        )
        if packs:
            body = LeasesRequest(
                worker_id=worker_id,
                engines=engines,
                timeout=timeout,
                request_id=request_id,
                packs=True,
            )
        response = await self.call(
            "POST", LEASES if packs else LEASE, token or self.processor, body
        )
        if response.status_code == 204:
            return None
        assert response.status_code == 200, response.text
        if packs:
            (lease,) = msgspec.json.decode(response.content, type=Leases).leases
            return lease
        return msgspec.json.decode(response.content, type=Lease)

    async def fail_job(self, lease: Lease, error: str) -> None:
        """Fail the leased job for good, as a worker whose engine refused the file does."""
        failed = await self.call(
            "POST",
            JOB_FAIL.format(job_id=lease.job_id),
            self.processor,
            FailRequest(lease_token=lease.lease_token, error=error, retryable=False),
        )
        assert failed.status_code == 204, failed.text


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """The app's lifespan in a task of its own: it is entered and left in one task, as under a
    real ASGI server, even when a fixture's setup and teardown run in different tasks."""
    started = asyncio.Event()
    stop = asyncio.Event()

    async def run() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    ready = asyncio.create_task(started.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # start-up failed: raise its error
    try:
        yield
    finally:
        stop.set()
        await task


@asynccontextmanager
async def running_server(data_dir: Path, **overrides: Any) -> AsyncIterator[Server]:
    clock = FakeClock()
    app = create_app(settings_for_tests(data_dir, **overrides), clock=clock)
    services = services_of(app)
    publishing: set[asyncio.Task[None]] = set()

    def clock_moved() -> None:
        # The sweeper sleeps in real time towards a deadline on this clock: it must look again.
        task = asyncio.get_running_loop().create_task(services.notifier.publish(leases_topic()))
        publishing.add(task)
        task.add_done_callback(publishing.discard)

    clock.on_advance.append(clock_moved)
    # The app answers its own URLs (the API, the local blob store's); any other URL, an S3
    # server's presigned one, goes out on the network as a client's would.
    mounts = {BASE: httpx.ASGITransport(app=app)}
    async with lifespan(app), httpx.AsyncClient(mounts=mounts, base_url=BASE) as http:
        yield Server(
            app=app,
            services=services,
            clock=clock,
            http=http,
            owner=(data_dir / "local-owner.token").read_text().strip(),
            processor=(data_dir / "local-processor.token").read_text().strip(),
        )
