"""Engine pins: an organisation's admin picks the engine version its uploads use, uploads may ask
for another, jobs go only to processors that run theirs, and the status shows per version who
serves it and what waits for it."""

from __future__ import annotations

from tests.unit.server.harness import Server, both_backends, error_body

from fap.api import (
    AUDIT,
    ORG,
    ORG_ENGINE,
    STATUS,
    AuditList,
    EngineSetting,
    EngineStatus,
    OrgInfo,
    StatusReport,
)

pytestmark = both_backends

LOCAL_ENGINE = ORG_ENGINE.format(org="local")


async def pin(server: Server, engine: str, token: str | None = None) -> OrgInfo:
    return await server.ok(
        "PUT", LOCAL_ENGINE, token or server.owner, EngineSetting(engine=engine), returns=OrgInfo
    )


async def status(server: Server) -> StatusReport:
    return await server.ok("GET", STATUS, server.owner, returns=StatusReport)


async def test_an_admin_pins_the_engine_and_the_audit_log_says_so(server: Server) -> None:
    admin = await server.new_user(None, "ada", "admin")
    info = await pin(server, "size@2", admin)
    assert (info.name, info.default_engine, info.role) == ("local", "size@2", "admin")
    shown = await server.ok("GET", ORG.format(org="local"), server.owner, returns=OrgInfo)
    assert shown.default_engine == "size@2"

    log = await server.ok("GET", AUDIT.format(org="local"), server.owner, returns=AuditList)
    event = log.events[0]
    assert (event.action, event.target) == ("org.engine", "local")
    assert event.details == {"engine": "size@2", "was": "size@1"}
    assert event.actor == "ada@local.example"


async def test_pinning_the_same_engine_again_changes_nothing(server: Server) -> None:
    await pin(server, "size@1")
    log = await server.ok("GET", AUDIT.format(org="local"), server.owner, returns=AuditList)
    assert "org.engine" not in [event.action for event in log.events]


async def test_members_may_not_pin_an_engine(server: Server) -> None:
    member = await server.new_user(None, "mo", "member")
    response = await server.call("PUT", LOCAL_ENGINE, member, EngineSetting(engine="size@2"))
    assert response.status_code == 403
    assert "admin" in error_body(response).detail


async def test_a_pin_must_be_an_engine_name(server: Server) -> None:
    response = await server.call("PUT", LOCAL_ENGINE, server.owner, EngineSetting(engine="size"))
    assert response.status_code == 400
    assert "name@version" in error_body(response).detail


async def test_uploads_use_the_pin_from_then_on_and_keep_the_engine_they_were_made_with(
    server: Server,
) -> None:
    before = await server.upload(server.owner, b"made on version 1")
    await pin(server, "size@2")
    after = await server.upload(server.owner, b"made on version 2")
    asked = await server.upload(server.owner, b"asks for version 1", engine="size@1")
    assert (before.engine, after.engine, asked.engine) == ("size@1", "size@2", "size@1")


async def test_jobs_go_only_to_processors_that_run_their_engine_version(server: Server) -> None:
    await pin(server, "size@2")
    job = await server.upload(server.owner, b"for version 2 alone")
    assert await server.lease(worker_id="old", engines=["size@1"]) is None
    lease = await server.lease(worker_id="new", engines=["size@2"])
    assert lease is not None
    assert (lease.job_id, lease.engine) == (job.id, "size@2")


async def test_status_lists_per_engine_its_processors_and_the_jobs_waiting(
    server: Server,
) -> None:
    for data in (b"a", b"b", b"c"):
        await server.upload(server.owner, data)
    await server.upload(server.owner, b"d", engine="size@2")
    await server.upload(server.owner, b"e", engine="ocr@3")
    assert await server.lease(worker_id="v1-a", engines=["size@1"]) is not None
    assert await server.lease(worker_id="v1-b", engines=["size@1", "magic@1"]) is not None
    await pin(server, "size@2")

    report = await status(server)
    assert report.default_engine == "size@2"
    assert report.engines == [
        EngineStatus(engine="magic@1", processors=["v1-b"], waiting=0, running=0),
        EngineStatus(engine="ocr@3", processors=[], waiting=1, running=0),
        EngineStatus(engine="size@1", processors=["v1-a", "v1-b"], waiting=1, running=2),
        EngineStatus(engine="size@2", processors=[], waiting=1, running=0),
    ]
    # The old fields stay as they were, for clients that know no others.
    assert report.queue_depth == 3
    assert report.jobs["leased"] == 2


async def test_the_pinned_engine_is_listed_though_nothing_serves_or_waits_for_it(
    server: Server,
) -> None:
    report = await status(server)
    assert report.engines == [EngineStatus(engine="size@1", processors=[], waiting=0, running=0)]
