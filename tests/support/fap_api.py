"""The API of one ``fap serve`` replica, spoken as a client and as a worker would, in raw JSON.

Just enough for the server-level tests (replicas, PostgreSQL outages): files are empty, so a job is
queued as soon as its upload exists, and a worker's result is a few bytes PUT to its presigned URL.
The tests check the server here, not the client or worker libraries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx

from fap.api import (
    DEVICES,
    JOB_COMPLETE,
    JOB_HEARTBEAT,
    JOB_RESULT_URL,
    LEASE,
    STATUS,
    UPLOAD,
    UPLOADS,
    UPLOADS_WAIT,
)
from fap.crypto import DeviceIdentity
from tests.support.processes import ServerProcess

__all__ = ("ENGINE", "RESULT", "Api")

RESULT = b"age-encryption.org/v1 a sealed result, as far as the server can tell"
ENGINE = "size@1"


@dataclass
class Api:
    """One replica: its URL, and the local owner's and processor's tokens (shared by replicas of
    one database: whichever replica created organisation ``local`` wrote them)."""

    http: httpx.AsyncClient
    url: str
    owner: str
    processor: str

    @classmethod
    def of(cls, http: httpx.AsyncClient, server: ServerProcess, tokens: ServerProcess) -> Api:
        return cls(http, server.url, tokens.owner_token, tokens.processor_token)

    async def call(
        self, method: str, path: str, token: str, body: Any = None, timeout: float = 10.0
    ) -> httpx.Response:
        return await self.http.request(
            method,
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    async def ok(self, method: str, path: str, token: str, body: Any = None) -> Any:
        response = await self.call(method, path, token, body)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json() if response.content else None

    # -- the client's side ---------------------------------------------------------------------

    async def register_device(self) -> None:
        recipient = DeviceIdentity.generate().recipient
        await self.ok("POST", DEVICES, self.owner, {"name": "laptop", "recipient": recipient})

    async def queue_empty_file(self, name: str, engine: str = ENGINE) -> str:
        """A new upload of an empty file (queued at once, having no chunks); answer its id."""
        created = await self.ok(
            "POST",
            UPLOADS,
            self.owner,
            {"name": name, "size": 0, "sha256": hashlib.sha256(b"").hexdigest(), "engine": engine},
        )
        upload_id: str = created["upload"]["id"]
        return upload_id

    async def upload(self, upload_id: str) -> dict[str, Any]:
        info: dict[str, Any] = await self.ok("GET", UPLOAD.format(upload_id=upload_id), self.owner)
        return info

    async def wait(self, ids: list[str], timeout: float) -> list[dict[str, Any]]:
        """Long-poll until one of the uploads is finished; answer them all."""
        response = await self.call(
            "POST", UPLOADS_WAIT, self.owner, {"ids": ids, "timeout": timeout}, timeout + 10
        )
        assert response.status_code == 200, response.text
        uploads: list[dict[str, Any]] = response.json()["uploads"]
        return uploads

    async def workers(self) -> set[str]:
        """Workers the organisation's status shows, seen lately."""
        report = await self.ok("GET", STATUS, self.owner)
        return {worker["worker_id"] for worker in report["workers"]}

    # -- the worker's side ---------------------------------------------------------------------

    async def lease(
        self, worker_id: str, timeout: float, engine: str = ENGINE
    ) -> dict[str, Any] | None:
        """Long-poll for a job; None if none came within ``timeout``."""
        response = await self.call(
            "POST",
            LEASE,
            self.processor,
            {"worker_id": worker_id, "engines": [engine], "timeout": timeout},
            timeout + 10,
        )
        if response.status_code == 204:
            return None
        assert response.status_code == 200, response.text
        lease: dict[str, Any] = response.json()
        return lease

    async def heartbeat(self, lease: dict[str, Any]) -> httpx.Response:
        return await self.call(
            "POST",
            JOB_HEARTBEAT.format(job_id=lease["job_id"]),
            self.processor,
            {"lease_token": lease["lease_token"]},
        )

    async def finish(self, lease: dict[str, Any]) -> None:
        """Store a result through the job's presigned URL and complete the job."""
        token = lease["lease_token"]
        job = lease["job_id"]
        sha256 = hashlib.sha256(RESULT).hexdigest()
        target = await self.ok(
            "POST",
            JOB_RESULT_URL.format(job_id=job),
            self.processor,
            {"lease_token": token, "size": len(RESULT), "sha256": sha256},
        )
        put = await self.http.put(target["url"], content=RESULT, headers=target.get("headers"))
        assert put.status_code in (200, 201, 204), put.text
        await self.ok(
            "POST",
            JOB_COMPLETE.format(job_id=job),
            self.processor,
            {
                "lease_token": token,
                "result_size": len(RESULT),
                "result_sha256": sha256,
            },
        )
