"""Two ``fap serve`` replicas on one PostgreSQL database and one bucket; one of them is killed.

A client or a worker that names both replicas keeps working on the other: requests cut off, and
the long-polls held open on the dead replica, move over, and every job is done once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from tests.support.processes import FapProcess, ServerProcess, fap_argv, wait_until
from tests.support.seaweedfs import S3Storage

from fap.api import (
    DEVICES,
    ME,
    UPLOAD,
    UPLOADS,
    ApiSession,
    DeviceRegistration,
    Me,
    UploadCreate,
    UploadCreated,
    UploadInfo,
)
from fap.crypto import DeviceIdentity


@pytest.fixture
def replicas(
    start_server: Callable[..., ServerProcess], pg_url: str, s3_storage: S3Storage
) -> list[ServerProcess]:
    shared = ("--db", pg_url, "--storage", s3_storage.url)
    # One after the other: the first migrates the new database and writes the local tokens.
    return [start_server(*shared, env=s3_storage.env) for _ in range(2)]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[str, str], FapProcess]]:
    started: list[FapProcess] = []

    def start(servers: str, token: str) -> FapProcess:
        worker = FapProcess(
            argv=fap_argv("work", "--server", servers, "--concurrency", "2", "--retry-for", "30"),
            log_path=tmp_path / f"worker-{len(started)}.log",
            env={"FAP_TOKEN": token},
        )
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


async def queue_empty_files(session: ApiSession, count: int) -> list[str]:
    """Uploads of empty files, which are queued at once: jobs without a chunk to send."""
    device = DeviceRegistration(name="laptop", recipient=DeviceIdentity.generate().recipient)
    await session.call("POST", DEVICES, device)
    ids = []
    for n in range(count):
        create = UploadCreate(name=f"empty-{n}", size=0, sha256=hashlib.sha256(b"").hexdigest())
        created = await session.call("POST", UPLOADS, create, returns=UploadCreated)
        ids.append(created.upload.id)
    return ids


def states(server: ServerProcess, token: str, ids: list[str]) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        infos = [http.get(UPLOAD.format(upload_id=upload_id)) for upload_id in ids]
    return {
        upload_id: msgspec.json.decode(info.content, type=UploadInfo).state
        for upload_id, info in zip(ids, infos, strict=True)
    }


async def test_a_client_naming_both_replicas_keeps_working_when_one_is_killed(
    replicas: list[ServerProcess],
) -> None:
    first, second = replicas
    token = first.owner_token
    async with ApiSession(f"{first.url},{second.url}", token, retry_for=15) as session:
        assert (await session.call("GET", ME, returns=Me)).name == "owner"
        assert session.server == first.url
        before = await queue_empty_files(session, 2)
        first.kill_hard()
        after = await queue_empty_files(session, 2)  # on the other replica, same database
        assert session.server == second.url
        assert (await session.call("GET", ME, returns=Me)).name == "owner"
    assert set(states(second, token, before + after).values()) == {"queued"}


async def test_a_worker_naming_both_replicas_finishes_every_job_when_one_is_killed(
    replicas: list[ServerProcess], start_worker: Callable[[str, str], FapProcess]
) -> None:
    first, second = replicas
    token = first.owner_token
    worker = start_worker(f"{first.url},{second.url}", first.processor_token)
    async with ApiSession(f"{first.url},{second.url}", token, retry_for=15) as session:
        ids = await queue_empty_files(session, 4)
        wait_until(
            lambda: "done" in states(second, token, ids).values(),
            60,
            f"the worker's first job\n{worker.log()}",
        )
        first.kill_hard()  # the worker's lease long-polls on it are cut off
        ids += await queue_empty_files(session, 4)
    wait_until(
        lambda: set(states(second, token, ids).values()) == {"done"},
        60,
        f"every job done\n{worker.log()}",
    )
    assert worker.alive()
    assert f"trying {second.url}" in worker.log()
