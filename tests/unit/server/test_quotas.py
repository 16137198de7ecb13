"""Quotas of an organisation's plan, checked when an upload is created: the largest file, the bytes
of a calendar month (UTC), the uploads in flight at once. Each refusal says which limit it hit."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.unit.server.harness import Server, error_body, running_server

from fap.api import ORGS, UPLOADS, OrgCreate, OrgInfo, UploadCreate
from fap.server.auth import hash_token
from fap.server.errors import QuotaExceeded
from fap.server.store import NewUpload, Quotas
from fap.server.store.uploads import month_start

GiB = 1 << 30


def create(name: str, size: int, request_id: str | None = None) -> UploadCreate:
    return UploadCreate(
        name=name, size=size, sha256=hashlib.sha256(b"x").hexdigest(), request_id=request_id
    )


@pytest.fixture
async def free(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data", default_plan="free") as server:
        yield server


async def a_free_org(server: Server) -> str:
    owner = await server.sign_in("founder@example.com")
    made = await server.ok("POST", ORGS, owner, OrgCreate(name="small"), returns=OrgInfo)
    assert (made.plan, made.max_concurrent_uploads) == ("free", 4)
    await server.register_device(owner)
    return owner


async def test_the_uploads_in_flight_are_capped_and_a_retry_is_not_counted_twice(
    free: Server,
) -> None:
    owner = await a_free_org(free)
    for n in range(4):
        made = await free.call("POST", UPLOADS, owner, create(f"f{n}", 10, request_id=f"r{n}"))
        assert made.status_code == 201, made.text
    refused = await free.call("POST", UPLOADS, owner, create("f4", 10))
    assert refused.status_code == 429
    assert "4 uploads in flight" in error_body(refused).detail
    again = await free.call("POST", UPLOADS, owner, create("f0", 10, request_id="r0"))
    assert again.status_code == 201  # the same request, answered the same upload


async def test_a_file_over_the_plans_largest_is_413(free: Server) -> None:
    owner = await a_free_org(free)
    refused = await free.call("POST", UPLOADS, owner, create("big", GiB + 1))
    assert refused.status_code == 413
    assert "plan" in error_body(refused).detail


async def test_the_bytes_of_a_month_are_capped_and_counted_from_the_first_utc(
    server: Server,
) -> None:
    uploads = server.services.store.uploads
    owner = await server.services.store.credentials.resolve(
        hash_token(server.owner), server.clock()
    )
    assert owner is not None and owner.org is not None and owner.user is not None
    quotas = Quotas("test", 100, max_bytes_per_month=100, max_concurrent_uploads=None)

    def new(size: int) -> NewUpload:
        return NewUpload(owner.org.id, owner.user.id, "f", size, "0" * 64, "size@1", 64 * 1024, 1)

    july = datetime(2026, 7, 31, 23, 0, tzinfo=UTC).timestamp()
    await uploads.create(new(60), july, quotas)
    with pytest.raises(QuotaExceeded, match="100 bytes a month"):
        await uploads.create(new(41), july + 60, quotas)
    august = datetime(2026, 8, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    await uploads.create(new(100), august, quotas)  # July's bytes count no more


def test_a_month_starts_at_midnight_utc_on_the_first() -> None:
    moment = datetime(2026, 12, 1, 11, 39, tzinfo=UTC).timestamp()
    assert month_start(moment) == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
