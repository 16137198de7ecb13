"""A small in-process fake of the fap server and its blob store, for client tests.

It speaks the routes of docs/api.md that the client uses, through ``httpx.MockTransport``, and
plays the worker too: once every chunk of an upload is stored, a long-poll finds it done, with a
result sealed to the registered devices.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from fap.api import (
    ChunkReport,
    ChunkSpec,
    ChunkUrl,
    ChunkUrlsRequest,
    DeviceInfo,
    DeviceRegistration,
    ResultUrl,
    StatusReport,
    UploadCreate,
    UploadCreated,
    UploadInfo,
    UploadList,
    UploadWait,
    WorkerInfo,
)
from fap.crypto import seal
from fap.transfer import chunk_count, decode_chunk

BASE = "http://fap.test"
TOKEN = "fap_user_test"

Analyze = Callable[[bytes], dict[str, Any]]


def size_and_hash(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@dataclass
class FakeUpload:
    info: UploadInfo
    reports: dict[int, ChunkReport] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.reports) == self.info.chunk_count


@dataclass
class FakeServer:
    analyze: Analyze | None = size_and_hash  # None: jobs never finish (no worker)
    fail_with: str | None = None  # every job fails with this error
    refuse_puts_from: int | None = None  # PUTs of chunks with seq >= this are refused (400)
    put_delay: float = 0.0  # seconds each blob PUT takes
    url_delay: float = 0.0  # seconds each chunk-URL request takes
    expire_first_url_of: set[int] = field(default_factory=set)  # seqs whose first URL is stale
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    uploads: dict[str, FakeUpload] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    url_requests: list[list[ChunkSpec]] = field(default_factory=list)
    refused_puts: list[tuple[int, int]] = field(default_factory=list)  # (seq, status)
    bytes_received: int = 0
    chunk_stored: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if path.startswith("/blobs/"):
            return await self._blob(request, path.removeprefix("/blobs/"))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, "The token is not known")
        for method, pattern, route in self._routes():
            if request.method == method and (match := re.fullmatch(pattern, path)):
                return await route(request, *match.groups())
        return _error(404, f"No route {request.method} {path}")

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("POST", r"/v1/devices", self._register),
            ("POST", r"/v1/uploads/wait", self._wait),
            ("POST", r"/v1/uploads", self._create),
            ("GET", r"/v1/uploads", self._list),
            ("GET", r"/v1/status", self._status),
            ("GET", r"/v1/uploads/([^/]+)", self._get),
            ("POST", r"/v1/uploads/([^/]+)/chunk-urls", self._chunk_urls),
            ("POST", r"/v1/uploads/([^/]+)/chunks", self._report),
            ("GET", r"/v1/uploads/([^/]+)/result", self._result),
        ]

    # -- client routes ---------------------------------------------------------------------

    async def _register(self, request: httpx.Request) -> httpx.Response:
        body = msgspec.json.decode(request.content, type=DeviceRegistration)
        device = self.devices.setdefault(
            body.recipient,
            DeviceInfo(id=f"dev-{len(self.devices)}", name=body.name, recipient=body.recipient),
        )
        return _json(device)

    async def _create(self, request: httpx.Request) -> httpx.Response:
        if not self.devices:
            return _error(400, "Register a device first")
        body = msgspec.json.decode(request.content, type=UploadCreate)
        upload_id = f"up-{len(self.uploads) + 1}"
        info = UploadInfo(
            id=upload_id,
            name=body.name,
            size=body.size,
            sha256=body.sha256,
            engine=body.engine or "size@1",
            chunk_size=body.chunk_size,
            chunk_count=chunk_count(body.size, body.chunk_size),
            chunks_stored=[],
            state="queued" if body.size == 0 else "pending",
            attempts=0,
            error=None,
            created_at=time.time(),
            finished_at=None,
        )
        self.uploads[upload_id] = FakeUpload(info)
        return _json(UploadCreated(upload=info), status=201)

    async def _get(self, request: httpx.Request, upload_id: str) -> httpx.Response:
        if upload_id not in self.uploads:
            return _error(404, "No such upload")
        return _json(self.uploads[upload_id].info)

    async def _list(self, request: httpx.Request) -> httpx.Response:
        uploads = sorted(
            (u.info for u in self.uploads.values()), key=lambda i: i.created_at, reverse=True
        )
        return _json(UploadList(uploads=uploads))

    async def _status(self, request: httpx.Request) -> httpx.Response:
        jobs: dict[str, int] = {}
        for upload in self.uploads.values():
            jobs[upload.info.state] = jobs.get(upload.info.state, 0) + 1
        worker = WorkerInfo(
            worker_id="w-1", engines=["size@1"], last_seen=time.time(), active_jobs=0
        )
        return _json(StatusReport(workers=[worker], jobs=jobs, queue_depth=jobs.get("queued", 0)))

    async def _chunk_urls(self, request: httpx.Request, upload_id: str) -> httpx.Response:
        upload = self.uploads[upload_id]
        body = msgspec.json.decode(request.content, type=ChunkUrlsRequest)
        self.url_requests.append(body.chunks)
        if self.url_delay:
            await asyncio.sleep(self.url_delay)
        if any(spec.seq in upload.reports for spec in body.chunks):
            return _error(409, "A chunk is already stored")
        if any(spec.size > upload.info.chunk_size for spec in body.chunks):
            return _error(400, "A stored chunk is never larger than its raw bytes")
        return _json([self._url(upload.info, spec) for spec in body.chunks])

    async def _report(self, request: httpx.Request, upload_id: str) -> httpx.Response:
        upload = self.uploads[upload_id]
        report = msgspec.json.decode(request.content, type=ChunkReport)
        stored = self.blobs.get(_chunk_key(upload_id, report.seq))
        if stored is None or len(stored) != report.stored_size:
            return _error(400, "The chunk is not stored")
        upload.reports[report.seq] = report
        info = upload.info
        stored_seqs = sorted(upload.reports)
        state = "queued" if info.state == "pending" else info.state
        upload.info = msgspec.structs.replace(info, chunks_stored=stored_seqs, state=state)
        self.chunk_stored.set()
        return _json(upload.info)

    async def _wait(self, request: httpx.Request) -> httpx.Response:
        body = msgspec.json.decode(request.content, type=UploadWait)
        deadline = time.monotonic() + body.timeout
        while True:
            for upload_id in body.ids:
                if upload_id in self.uploads:
                    self._play_worker(self.uploads[upload_id])
            infos = [self.uploads[i].info for i in body.ids if i in self.uploads]
            if any(info.state in ("done", "failed") for info in infos):
                return _json(UploadList(uploads=infos))
            if time.monotonic() >= deadline:
                return _json(UploadList(uploads=infos))
            await asyncio.sleep(0.01)

    async def _result(self, request: httpx.Request, upload_id: str) -> httpx.Response:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return _error(404, "No such upload")
        if upload.info.state != "done":
            return _error(409, f"Upload {upload_id} has no result yet")
        key = f"uploads/{upload_id}/result.age"
        url = f"{BASE}/blobs/{key}"
        return _json(ResultUrl(upload_id=upload_id, url=url, size=len(self.blobs[key])))

    # -- the worker's part -----------------------------------------------------------------

    def _play_worker(self, upload: FakeUpload) -> None:
        info = upload.info
        if info.state in ("done", "failed") or not upload.complete or self.analyze is None:
            return
        if self.fail_with is not None:
            upload.info = msgspec.structs.replace(
                info, state="failed", error=self.fail_with, finished_at=time.time()
            )
            return
        data = self.file_bytes(info.id)
        result = json.dumps(self.analyze(data)).encode()
        sealed = seal(result, [device.recipient for device in self.devices.values()])
        self.blobs[f"uploads/{info.id}/result.age"] = sealed
        upload.info = msgspec.structs.replace(info, state="done", finished_at=time.time())

    def file_bytes(self, upload_id: str) -> bytes:
        """The original bytes of an upload, from its stored chunks."""
        upload = self.uploads[upload_id]
        parts = []
        for seq in range(upload.info.chunk_count):
            report = upload.reports[seq]
            parts.append(
                decode_chunk(
                    self.blobs[_chunk_key(upload_id, seq)],
                    codec=report.codec,
                    raw_size=report.raw_size,
                    sha256=report.sha256,
                )
            )
        return b"".join(parts)

    # -- the blob store --------------------------------------------------------------------

    def _url(self, info: UploadInfo, spec: ChunkSpec) -> ChunkUrl:
        """A URL as S3 signs it: for the exact size, with a checksum header the PUT must carry."""
        stale = spec.seq in self.expire_first_url_of
        self.expire_first_url_of.discard(spec.seq)
        query = f"size={spec.size}&sha256={spec.sha256}" + ("&expired=1" if stale else "")
        return ChunkUrl(
            seq=spec.seq,
            url=f"{BASE}/blobs/{_chunk_key(info.id, spec.seq)}?{query}",
            size=spec.size,
            headers={
                "Content-Length": str(spec.size),
                "x-amz-checksum-sha256": _base64_sha256(spec.sha256),
            },
        )

    async def _blob(self, request: httpx.Request, key: str) -> httpx.Response:
        if request.method == "GET":
            if key not in self.blobs:
                return httpx.Response(404, text="no such blob")
            return httpx.Response(200, content=self.blobs[key])
        data = request.content
        seq = int(key.rsplit("/", 1)[1])
        if self.put_delay:
            await asyncio.sleep(self.put_delay)
        if self.refuse_puts_from is not None and seq >= self.refuse_puts_from:
            return self._refuse(seq, 400, "refused by the test")
        params = request.url.params
        if "expired" in params:
            return self._refuse(seq, 403, "Request has expired")
        signed = _base64_sha256(params["sha256"])
        if request.headers.get("x-amz-checksum-sha256") != signed:
            return self._refuse(seq, 403, "SignatureDoesNotMatch: the checksum header is missing")
        if len(data) != int(params["size"]):
            return self._refuse(seq, 403, "SignatureDoesNotMatch: another Content-Length")
        if hashlib.sha256(data).hexdigest() != params["sha256"]:
            return self._refuse(seq, 400, "BadDigest")
        self.bytes_received += len(data)
        self.blobs[key] = data
        return httpx.Response(200)

    def _refuse(self, seq: int, status: int, reason: str) -> httpx.Response:
        self.refused_puts.append((seq, status))
        return httpx.Response(status, text=reason)


def _base64_sha256(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _chunk_key(upload_id: str, seq: int) -> str:
    return f"uploads/{upload_id}/chunks/{seq:08d}"


def _json(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
    )


def _error(status: int, detail: str) -> httpx.Response:
    return _json({"status_code": status, "detail": detail}, status=status)
