"""Dedup: a file its uploader had analysed already is answered with that upload, done — nothing
made, no chunk URL signed, no quota charged — as long as the earlier result is still kept and
was sealed to exactly the devices the uploader has now. Anything else is a new upload."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import update
from tests.unit.server.harness import CHUNK, Server, both_backends, error_body, running_server

from fap.api import (
    DEVICE,
    DEVICES,
    JOB_COMPLETE,
    JOB_RESULT_URL,
    ORG_HEADER,
    ORGS,
    UPLOAD_RESULT,
    UPLOADS,
    UPLOADS_BATCH,
    ChunkSpec,
    DeviceList,
    JobState,
    OrgCreate,
    OrgInfo,
    ResultUrl,
    UploadBatch,
    UploadBatchCreated,
    UploadCreate,
    UploadCreated,
    UploadInfo,
    UploadList,
)
from fap.server.store import Upload
from fap.server.store.uploads import recipients_digest
from fap.transfer import encode_chunk

pytestmark = both_backends

DATA = b"col_a,col_b\n1,2\n3,4\n" * 50
SEALED = b"age-encryption.org/v1 pretend ciphertext"


def asking(
    data: bytes = DATA,
    *,
    name: str = "report.csv",
    engine: str | None = None,
    request_id: str | None = None,
    dedup: bool = True,
    chunk_size: int = CHUNK,
) -> UploadCreate:
    """A create for ``data`` naming its one encoded chunk, as a client sends a small file."""
    chunk = encode_chunk(0, data)
    return UploadCreate(
        name=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        engine=engine,
        chunk_size=chunk_size,
        request_id=request_id,
        chunks=[ChunkSpec(seq=0, size=chunk.stored_size, sha256=chunk.sha256)],
        dedup=dedup,
    )


async def create(server: Server, token: str, body: UploadCreate) -> UploadCreated:
    return await server.ok("POST", UPLOADS, token, body, returns=UploadCreated)


async def analysed(
    server: Server,
    token: str | None = None,
    data: bytes = DATA,
    *,
    name: str = "report.csv",
    engine: str = "size@1",
    processor: str | None = None,
) -> UploadInfo:
    """``data`` uploaded, leased and completed with a sealed result: done."""
    token = token or server.owner
    processor = processor or server.processor
    info = await server.upload(token, data, name=name, engine=engine)
    lease = await server.lease(processor, engines=[engine])
    assert lease is not None and lease.job_id == info.id
    sha256 = hashlib.sha256(SEALED).hexdigest()
    url = await server.ok(
        "POST",
        JOB_RESULT_URL.format(job_id=lease.job_id),
        processor,
        {"lease_token": lease.lease_token, "size": len(SEALED), "sha256": sha256},
        returns=ResultUrl,
    )
    assert (await server.http.put(url.url, content=SEALED, headers=url.headers)).is_success
    done = await server.call(
        "POST",
        JOB_COMPLETE.format(job_id=lease.job_id),
        processor,
        {"lease_token": lease.lease_token, "result_size": len(SEALED), "result_sha256": sha256},
    )
    assert done.status_code == 204, done.text
    return info


async def listed(server: Server, token: str | None = None) -> list[str]:
    answer = await server.ok("GET", UPLOADS, token or server.owner, returns=UploadList)
    return [upload.id for upload in answer.uploads]


def deduplicated(server: Server) -> float:
    value = server.services.metrics.registry.get_sample_value("fap_uploads_deduplicated_total")
    return value or 0.0


async def test_the_same_file_again_is_answered_with_its_done_upload(server: Server) -> None:
    earlier = await analysed(server)

    again = await create(server, server.owner, asking())

    assert (again.upload.id, again.upload.state) == (earlier.id, JobState.DONE)
    assert again.chunk_urls == []  # nothing to send
    assert await listed(server) == [earlier.id]  # nothing new was made
    assert deduplicated(server) == 1
    # Its result is the uploader's to fetch, as any done upload's.
    result = await server.ok(
        "GET", UPLOAD_RESULT.format(upload_id=earlier.id), server.owner, returns=ResultUrl
    )
    assert (await server.http.get(result.url)).content == SEALED


async def test_the_digest_a_lease_records_is_of_the_recipients_it_hands_out(
    server: Server,
) -> None:
    await server.register_device(server.owner)
    await server.register_device(server.owner)  # a second device: the lease names both
    await server.upload(server.owner, DATA)
    lease = await server.lease()
    assert lease is not None and len(lease.recipients) == 2

    async with server.services.store.db.read() as session:
        upload = await session.get(Upload, lease.job_id)
    assert upload is not None
    # Whatever the order they come in.
    assert upload.recipients_sha256 == recipients_digest(reversed(lease.recipients))


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(asking(name="other.csv"), id="another name"),
        pytest.param(asking(engine="size@2"), id="another engine"),
        pytest.param(asking(DATA + b"5,6\n"), id="other content"),
        pytest.param(asking(dedup=False), id="dedup false"),
    ],
)
async def test_another_file_name_engine_or_dedup_false_is_a_new_upload(
    server: Server, other: UploadCreate
) -> None:
    earlier = await analysed(server)

    made = await create(server, server.owner, other)

    assert made.upload.id != earlier.id
    assert made.upload.state == JobState.PENDING
    assert len(made.chunk_urls) == 1
    assert set(await listed(server)) == {earlier.id, made.upload.id}
    assert deduplicated(server) == 0


async def test_another_users_analysis_answers_nobody_else(server: Server) -> None:
    await analysed(server)
    member = await server.new_user(None, "bob", "member")
    await server.register_device(member)

    made = await create(server, member, asking())

    assert made.upload.state == JobState.PENDING
    assert await listed(server, member) == [made.upload.id]


async def test_an_analysis_in_another_organisation_answers_nothing_here(server: Server) -> None:
    """One person in two organisations, with the same devices: each has its own uploads."""
    owner, processor = await server.new_org("globex")
    await server.register_device(owner)
    earlier = await analysed(server, owner, processor=processor)
    await server.ok("POST", ORGS, owner, OrgCreate(name="initech"), returns=OrgInfo)

    response = await server.http.post(
        UPLOADS,
        content=msgspec.json.encode(asking()),
        headers={"Authorization": f"Bearer {owner}", ORG_HEADER: "initech"},
    )

    assert response.status_code == 201, response.text
    made = msgspec.json.decode(response.content, type=UploadCreated)
    assert made.upload.id != earlier.id


async def test_a_device_registered_since_gets_the_file_analysed_anew(server: Server) -> None:
    earlier = await analysed(server)
    await server.register_device(server.owner)  # the old result is not sealed to it

    made = await create(server, server.owner, asking())

    assert made.upload.id != earlier.id
    assert made.upload.state == JobState.PENDING


async def test_a_device_revoked_since_gets_the_file_analysed_anew(server: Server) -> None:
    await server.register_device(server.owner)
    await server.register_device(server.owner)
    earlier = await analysed(server)
    devices = await server.ok("GET", DEVICES, server.owner, returns=DeviceList)
    gone = devices.devices[0].id
    revoked = await server.call("DELETE", DEVICE.format(device_id=gone), server.owner)
    assert revoked.status_code == 204, revoked.text

    made = await create(server, server.owner, asking())

    assert made.upload.id != earlier.id


async def test_a_result_that_expires_before_it_could_be_fetched_is_not_an_answer(
    server: Server,
) -> None:
    earlier = await analysed(server)
    keep, ttl = server.settings.keep_results, server.settings.url_ttl_seconds
    server.clock.advance(keep - ttl - 60)  # a minute more than a result URL lives, still kept
    assert (await create(server, server.owner, asking())).upload.id == earlier.id

    server.clock.advance(120)  # within a URL's lifetime of its expiry
    made = await create(server, server.owner, asking())
    assert made.upload.id != earlier.id


async def test_an_expired_result_is_not_an_answer(tmp_path: Path, db_url: str) -> None:
    async with running_server(tmp_path / "data", db=db_url, keep_results=0.0) as server:
        earlier = await analysed(server)
        async with server.services.store.db.write() as session:  # as the clean-up marks it
            await session.execute(
                update(Upload).where(Upload.id == earlier.id).values(expired_at=server.clock())
            )
        made = await create(server, server.owner, asking())
        assert made.upload.id != earlier.id


async def test_only_a_done_upload_is_an_answer(server: Server) -> None:
    queued = await server.upload(server.owner, DATA)  # complete, not analysed yet
    assert (await create(server, server.owner, asking())).upload.id != queued.id

    lease = await server.lease()
    assert lease is not None
    await server.fail_job(lease, "The engine crashed.")
    assert (await create(server, server.owner, asking())).upload.id != lease.job_id


async def test_a_job_leased_by_an_older_server_is_not_an_answer(server: Server) -> None:
    """No digest recorded (leased before migration 0007): what it is sealed to is unknown."""
    earlier = await analysed(server)
    async with server.services.store.db.write() as session:
        await session.execute(
            update(Upload).where(Upload.id == earlier.id).values(recipients_sha256=None)
        )
    assert (await create(server, server.owner, asking())).upload.id != earlier.id


async def test_a_batch_answers_known_files_and_makes_the_others(server: Server) -> None:
    earlier = await analysed(server)
    fresh = b"another file\n" * 20

    made = await server.ok(
        "POST",
        UPLOADS_BATCH,
        server.owner,
        UploadBatch(uploads=[asking(fresh, name="new.txt"), asking()]),
        returns=UploadBatchCreated,
    )

    new, known = made.uploads
    assert (known.upload.id, known.upload.state, known.chunk_urls) == (
        earlier.id,
        JobState.DONE,
        [],
    )
    assert new.upload.state == JobState.PENDING and len(new.chunk_urls) == 1
    assert set(await listed(server)) == {earlier.id, new.upload.id}
    assert deduplicated(server) == 1


async def test_a_resent_request_gets_the_upload_that_request_made(server: Server) -> None:
    await analysed(server)
    # Made with dedup off: the request made an upload of its own...
    first = await create(server, server.owner, asking(request_id="req-1", dedup=False))
    # ...which its resend answers, though dedup could answer another.
    again = await create(server, server.owner, asking(request_id="req-1"))
    assert again.upload.id == first.upload.id
    assert again.upload.state == JobState.PENDING


async def test_a_request_answered_by_dedup_is_answered_the_same_when_resent(
    server: Server,
) -> None:
    earlier = await analysed(server)
    first = await create(server, server.owner, asking(request_id="req-2"))
    again = await create(server, server.owner, asking(request_id="req-2"))
    assert first.upload.id == again.upload.id == earlier.id
    assert await listed(server) == [earlier.id]


async def test_an_analysis_sent_in_chunks_of_another_size_still_answers(server: Server) -> None:
    """The chunk size says how a file was sent, not what it is: no conflict for it."""
    earlier = await analysed(server)
    made = await create(server, server.owner, asking(request_id="req-3", chunk_size=2 * CHUNK))
    assert made.upload.id == earlier.id


async def test_a_request_id_used_for_another_file_is_still_a_conflict(server: Server) -> None:
    await analysed(server)
    await create(server, server.owner, asking(b"first file", name="a.txt", request_id="req-4"))
    refused = await server.call("POST", UPLOADS, server.owner, asking(request_id="req-4"))
    assert refused.status_code == 409
    assert "request_id" in error_body(refused).detail


@pytest.fixture
async def free(tmp_path: Path, db_url: str) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data", db=db_url, default_plan="free") as server:
        yield server


async def test_a_dedup_answer_is_charged_no_quota(free: Server) -> None:
    """At the plan's cap of uploads in flight a known file is still answered: it is not one."""
    owner, processor = await free.new_org("small")  # the free plan: 4 uploads in flight
    earlier = await analysed(free, owner, processor=processor)
    for n in range(4):
        await create(free, owner, asking(f"file {n}".encode(), name=f"f{n}.txt"))
    refused = await free.call("POST", UPLOADS, owner, asking(b"one more", name="f4.txt"))
    assert refused.status_code == 429, refused.text

    again = await create(free, owner, asking())
    assert again.upload.id == earlier.id
