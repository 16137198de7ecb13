"""What the engine used, as the processor reports it with a completion or a failure: kept on the
upload row (of the last attempt), counted on ``/metrics`` per engine, and refused when absurd."""

from __future__ import annotations

import pytest
from tests.unit.server.harness import Server, both_backends
from tests.unit.server.test_jobs import store_result
from tests.unit.server.test_metrics import scrape, value

from fap.api import JOB_COMPLETE, JOB_FAIL, Lease
from fap.server.store import Upload

MiB = 1024 * 1024
USAGE = {"cpu_seconds": 1.5, "peak_memory_bytes": 48 * MiB, "wall_seconds": 2.25}

pytestmark = both_backends  # the columns are migration 0006's, on SQLite and PostgreSQL


async def _leased(server: Server) -> Lease:
    await server.create_upload(server.owner, b"")
    lease = await server.lease()
    assert lease is not None
    return lease


async def _row(server: Server, job_id: str) -> Upload:
    async with server.services.store.db.read() as session:
        upload = await session.get(Upload, job_id)
    assert upload is not None
    return upload


async def test_a_completion_keeps_the_usage_on_the_upload_and_counts_it(server: Server) -> None:
    lease = await _leased(server)
    body = {**await store_result(server, lease), "usage": USAGE}
    path = JOB_COMPLETE.format(job_id=lease.job_id)
    assert (await server.call("POST", path, server.processor, body)).status_code == 204

    row = await _row(server, lease.job_id)
    assert (row.engine_cpu_seconds, row.engine_peak_memory_bytes, row.engine_wall_seconds) == (
        1.5,
        48 * MiB,
        2.25,
    )
    _, samples = await scrape(server)
    labels = {"engine": "size@1", "outcome": "done"}
    assert value(samples, "fap_engine_cpu_seconds_count", **labels) == 1
    assert value(samples, "fap_engine_cpu_seconds_sum", **labels) == pytest.approx(1.5)
    assert value(samples, "fap_engine_peak_memory_bytes_sum", **labels) == 48 * MiB
    assert value(samples, "fap_engine_wall_seconds_sum", **labels) == pytest.approx(2.25)


async def test_a_failure_keeps_its_attempts_usage_and_counts_it_as_failed(server: Server) -> None:
    lease = await _leased(server)
    body = {"lease_token": lease.lease_token, "error": "It hit a limit.", "usage": USAGE}
    path = JOB_FAIL.format(job_id=lease.job_id)
    assert (await server.call("POST", path, server.processor, body)).status_code == 204

    row = await _row(server, lease.job_id)
    assert row.engine_cpu_seconds == 1.5
    _, samples = await scrape(server)
    assert value(samples, "fap_engine_cpu_seconds_count", engine="size@1", outcome="failed") == 1


async def test_a_processor_that_reports_no_usage_leaves_it_unknown(server: Server) -> None:
    lease = await _leased(server)
    body = await store_result(server, lease)  # as a processor of the previous release sends it
    path = JOB_COMPLETE.format(job_id=lease.job_id)
    assert (await server.call("POST", path, server.processor, body)).status_code == 204

    row = await _row(server, lease.job_id)
    assert row.engine_cpu_seconds is None and row.engine_peak_memory_bytes is None
    _, samples = await scrape(server)
    assert value(samples, "fap_engine_cpu_seconds_count", engine="size@1", outcome="done") is None


@pytest.mark.parametrize("figure", ["cpu_seconds", "peak_memory_bytes", "wall_seconds"])
async def test_a_usage_that_cannot_be_true_is_refused(server: Server, figure: str) -> None:
    lease = await _leased(server)
    body = {**await store_result(server, lease), "usage": {**USAGE, figure: -1}}
    path = JOB_COMPLETE.format(job_id=lease.job_id)
    response = await server.call("POST", path, server.processor, body)
    assert response.status_code == 400
    assert "usage" in response.json()["detail"]
