"""Races the store settles, as replicas on one database meet them: requests that arrive together
get one outcome each, never an error and never a job handed out twice.

The calls run concurrently on separate connections (on PostgreSQL they truly overlap; SQLite's
writers take turns), straight against the store so that nothing in between serialises them.
"""

from __future__ import annotations

import asyncio

from tests.unit.server.harness import Server, both_backends

from fap.server.auth import hash_token, quotas_of
from fap.server.store import Actor, Chunk, ChunkOutcome, Credential, NewOrg, NewUpload, Upload

pytestmark = both_backends


async def owner_of(server: Server) -> Credential:
    owner = await server.services.store.credentials.resolve(
        hash_token(server.owner), server.clock()
    )
    assert owner is not None and owner.user is not None and owner.org is not None
    return owner


async def queued_jobs(server: Server, count: int, *, chunks: int = 0) -> list[Upload]:
    owner = await owner_of(server)
    assert owner.user is not None
    return [
        await server.services.store.uploads.create(
            NewUpload(
                org_id=owner.org.id,
                user_id=owner.user.id,
                name=f"file-{n}",
                size=chunks,
                sha256="0" * 64,
                engine="size@1",
                chunk_size=1,
                chunk_count=chunks,
            ),
            server.clock(),
        )
        for n in range(count)
    ]


async def test_concurrent_leases_take_every_queued_job_each_once(server: Server) -> None:
    await queued_jobs(server, 5)
    owner = await owner_of(server)
    jobs = server.services.store.jobs
    leases = await asyncio.gather(
        *(jobs.lease_many(owner.org.id, ["size@1"], f"w{n}", 30, server.clock()) for n in range(12))
    )
    taken = [job.id for leased in leases for job in leased]
    # Every job is taken by this one round: a lease that locked more rows than it took would
    # hide them from the others, which would then find nothing and sleep with jobs queued.
    assert len(taken) == 5
    assert len(set(taken)) == 5


async def test_concurrent_leases_of_several_take_every_queued_job_each_once(server: Server) -> None:
    await queued_jobs(server, 20)
    owner = await owner_of(server)
    jobs = server.services.store.jobs
    leases = await asyncio.gather(
        *(
            jobs.lease_many(
                owner.org.id, ["size@1"], f"w{n}", 30, server.clock(), max_jobs=4, max_bytes=1 << 20
            )
            for n in range(12)
        )
    )
    taken = [job.id for leased in leases for job in leased]
    assert len(taken) == len(set(taken)) == 20  # none twice, none left behind
    assert all(len(leased) <= 4 for leased in leases)


async def test_a_new_workers_first_requests_register_it_once(server: Server) -> None:
    owner = await owner_of(server)
    jobs = server.services.store.jobs
    await asyncio.gather(
        *(jobs.see_worker(owner.org.id, "new", ["size@1"], server.clock()) for _ in range(8))
    )
    workers, _ = await jobs.status(owner.org.id, server.clock(), 60)
    assert [(w.worker_id, w.engines) for w in workers] == [("new", ["size@1"])]


async def test_a_chunk_reported_twice_at_once_is_recorded_once(server: Server) -> None:
    (upload,) = await queued_jobs(server, 1, chunks=2)
    uploads = server.services.store.uploads

    def report() -> Chunk:
        return Chunk(
            upload_id=upload.id,
            seq=0,
            raw_size=1,
            stored_size=1,
            codec="raw",
            sha256="1" * 64,
            stored_at=server.clock(),
        )

    records = await asyncio.gather(*(uploads.record_chunk(upload.id, report()) for _ in range(6)))
    assert sorted(record.outcome.value for record in records) == ["queued"] + ["same"] * 5
    assert {(record.stored, record.state) for record in records} == {(1, "queued")}
    assert (await uploads.stored_seqs([upload.id]))[upload.id] == [0]
    other = report()
    other.sha256 = "2" * 64
    assert (await uploads.record_chunk(upload.id, other)).outcome is ChunkOutcome.DIFFERENT


async def test_chunks_reported_together_queue_the_job_once_and_count_exactly(
    server: Server,
) -> None:
    (upload,) = await queued_jobs(server, 1, chunks=8)
    uploads = server.services.store.uploads

    def report(seq: int) -> Chunk:
        return Chunk(
            upload_id=upload.id,
            seq=seq,
            raw_size=1,
            stored_size=1,
            codec="raw",
            sha256="1" * 64,
            stored_at=server.clock(),
        )

    records = await asyncio.gather(*(uploads.record_chunk(upload.id, report(s)) for s in range(8)))
    # The reports take turns on the upload's row: one is first, and each counts those before it.
    assert [record.outcome for record in records].count(ChunkOutcome.QUEUED) == 1
    assert sorted(record.stored for record in records) == list(range(1, 9))


async def test_a_key_registered_twice_at_once_is_one_device(server: Server) -> None:
    owner = await owner_of(server)
    assert owner.user is not None
    devices = server.services.store.devices
    actor = Actor(owner.user.id, "owner")
    results = await asyncio.gather(
        *(
            devices.register(owner.user.id, "laptop", "age1same", actor, server.clock())
            for _ in range(6)
        )
    )
    assert sorted(new for _, new in results) == [False] * 5 + [True]
    assert len({device.id for device, _ in results}) == 1
    assert await devices.active_count(owner.user.id) == 1


async def test_servers_creating_one_organisation_at_once_create_it_once(server: Server) -> None:
    accounts = server.services.store.accounts
    written: list[int] = []

    async def create(n: int) -> bool:
        async def write_files() -> None:
            written.append(n)

        new = NewOrg(
            name="together",
            default_engine="size@1",
            quotas=quotas_of("local", server.settings),
            owner_name="owner",
            owner_token_hash=f"owner-{n}",
            processor_token_hash=f"processor-{n}",
        )
        return await accounts.create_org_once(new, server.clock(), write_files)

    created = await asyncio.gather(*(create(n) for n in range(4)))
    assert sorted(created) == [False, False, False, True]
    assert len(written) == 1
    owner = await server.services.store.credentials.resolve(f"owner-{written[0]}", server.clock())
    assert owner is not None and owner.org is not None and owner.org.name == "together"
