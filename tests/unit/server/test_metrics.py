"""``/metrics``: the autoscaling signals, their bounded labels, and figures read from the store."""

from __future__ import annotations

import logging
import re
import time
import typing
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError
from tests.unit.server.harness import CHUNK, Server, running_server
from tests.unit.server.test_jobs import store_result

from fap.api import CHUNKS, JOB_COMPLETE, UPLOAD, ChunkReport
from fap.server import metrics as metrics_module
from fap.server.routes import V1_HANDLERS
from fap.server.store import Jobs
from fap.transfer import encode_chunk

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: Server) -> tuple[str, Samples]:
    response = await server.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_metrics_need_no_token_and_speak_prometheus_text(server: Server) -> None:
    text, samples = await scrape(server)
    assert "# TYPE fap_http_request_duration_seconds histogram" in text
    assert "# TYPE fap_event_loop_lag_seconds histogram" in text
    assert value(samples, "fap_bytes_in_total") == 0


async def test_requests_are_counted_by_route_template_never_by_path(server: Server) -> None:
    missing = "f" * 32
    response = await server.call("GET", UPLOAD.format(upload_id=missing), server.owner)
    assert response.status_code == 404
    await server.call("GET", "/v1/me", server.owner)
    await server.call("GET", "/v1/me", None)
    await server.lease(timeout=0)
    text, samples = await scrape(server)
    assert missing not in text and server.owner not in text
    route = "/v1/uploads/{upload_id}"
    assert value(samples, "fap_http_requests_total", route=route, method="GET", status="4xx") == 1
    assert (
        value(samples, "fap_http_requests_total", route="/v1/me", method="GET", status="2xx") == 1
    )
    assert (
        value(samples, "fap_http_requests_total", route="/v1/me", method="GET", status="4xx") == 1
    )
    count = "fap_http_request_duration_seconds_count"
    assert value(samples, count, route="/v1/me", method="GET", kind="call") == 2
    assert value(samples, count, route="/v1/lease", method="POST", kind="long-poll") == 1
    _, again = await scrape(server)
    assert not any(
        dict(labels).get("route") == "/metrics" for name, labels in again
    )  # scrapes are not requests of the API


async def test_queue_depth_and_leases_per_engine_come_from_the_store(server: Server) -> None:
    for _ in range(3):
        await server.create_upload(server.owner, b"")  # an empty file is queued at once
    await server.create_upload(server.owner, b"", engine="ocr@2")
    assert await server.lease(worker_id="w1") is not None
    _, samples = await scrape(server)
    assert value(samples, "fap_queue_depth", engine="size@1") == 2
    assert value(samples, "fap_queue_depth", engine="ocr@2") == 1
    assert value(samples, "fap_jobs_leased", engine="size@1") == 1
    assert value(samples, "fap_jobs_leased", engine="ocr@2") == 0
    assert value(samples, "fap_processors_online", engine="size@1") == 1
    assert value(samples, "fap_processors_online", engine="ocr@2") == 0


async def test_replicas_on_one_database_report_the_same_queue(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    async with running_server(data) as one, running_server(data) as other:
        await one.create_upload(one.owner, b"")
        await one.create_upload(one.owner, b"")
        assert await other.lease(worker_id="w1") is not None
        for replica in (one, other):
            _, samples = await scrape(replica)
            assert value(samples, "fap_queue_depth", engine="size@1") == 1
            assert value(samples, "fap_jobs_leased", engine="size@1") == 1
        # Each app counts its own requests in its own registry: no collision, no sharing.
        _, samples_one = await scrape(one)
        lease = "fap_http_request_duration_seconds_count"
        assert value(samples_one, lease, route="/v1/lease", method="POST", kind="long-poll") is None


async def test_the_store_is_asked_once_per_burst_of_scrapes(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[float] = []
    original = Jobs.backlog

    async def counted(self: Jobs, now: float, online_seconds: float) -> metrics_module.Backlog:
        reads.append(now)
        return await original(self, now, online_seconds)

    monkeypatch.setattr(Jobs, "backlog", counted)
    for _ in range(5):
        await scrape(server)
    assert len(reads) == 1
    monkeypatch.setattr(metrics_module, "_BACKLOG_TTL", 0.0)
    await server.create_upload(server.owner, b"")
    _, samples = await scrape(server)
    assert len(reads) == 2
    assert value(samples, "fap_queue_depth", engine="size@1") == 1


async def test_without_the_store_the_scrape_still_serves_the_other_signals(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unreachable(self: Jobs, now: float, online_seconds: float) -> None:
        raise OperationalError("SELECT", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(Jobs, "backlog", unreachable)
    with caplog.at_level(logging.WARNING, logger="fap.server.metrics"):
        text, samples = await scrape(server)
    assert "fap_queue_depth" not in text.replace("# HELP fap_queue_depth", "")
    assert value(samples, "fap_event_loop_lag_max_seconds") is not None
    assert "could not be read" in caplog.text


async def test_engines_past_the_cap_are_summed_as_other(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_module, "_MAX_ENGINES", 3)
    for n in range(5):
        for _ in range(n + 1):
            await server.create_upload(server.owner, b"", engine=f"e{n}@1")
    await server.lease(engines=["e0@1"], worker_id="runs-e0")
    _, samples = await scrape(server)
    depth = {
        dict(labels)["engine"]: v
        for (name, labels), v in samples.items()
        if name == "fap_queue_depth"
    }
    # e0 is run by a processor, so it is always shown; then the busiest: e4, e3.
    assert depth == {"e0@1": 0, "e4@1": 5, "e3@1": 4, "other": 3 + 2}


async def test_job_latency_is_observed_per_engine_when_a_job_completes(server: Server) -> None:
    await server.create_upload(server.owner, b"")
    lease = await server.lease()
    assert lease is not None
    server.clock.advance(7.0)
    body = await store_result(server, lease)
    path = JOB_COMPLETE.format(job_id=lease.job_id)
    assert (await server.call("POST", path, server.processor, body)).status_code == 204
    # The same completion answered again is not a second job.
    assert (await server.call("POST", path, server.processor, body)).status_code == 204
    _, samples = await scrape(server)
    assert value(samples, "fap_job_latency_seconds_count", engine="size@1") == 1
    assert value(samples, "fap_job_latency_seconds_sum", engine="size@1") == pytest.approx(7.0)


async def test_bytes_in_counts_each_stored_chunk_once(server: Server) -> None:
    data = bytes(range(256)) * 1024  # 256 KiB: four 64 KiB chunks, compressible
    created = await server.create_upload(server.owner, data)
    for seq in range(created.upload.chunk_count):
        response = await server.send_chunk(server.owner, created, data, seq)
        assert response.status_code == 200, response.text
    first = encode_chunk(0, data[:CHUNK])
    repeated = ChunkReport(
        seq=0,
        raw_size=first.raw_size,
        stored_size=first.stored_size,
        codec="zstd",
        sha256=first.sha256,
    )
    path = CHUNKS.format(upload_id=created.upload.id)
    assert (await server.call("POST", path, server.owner, repeated)).status_code == 200
    _, samples = await scrape(server)
    assert value(samples, "fap_raw_bytes_in_total") == len(data)
    stored = value(samples, "fap_bytes_in_total") or 0
    assert 0 < stored < len(data)


async def test_a_blocked_event_loop_shows_as_lag(server: Server) -> None:
    time.sleep(0.4)  # blocking the loop is the point
    deadline = time.monotonic() + 5
    lag = 0.0
    while lag < 0.1 and time.monotonic() < deadline:
        _, samples = await scrape(server)
        lag = value(samples, "fap_event_loop_lag_max_seconds") or 0.0
    assert lag >= 0.1
    assert (value(samples, "fap_event_loop_lag_seconds_count") or 0) >= 1


def test_every_route_that_long_polls_is_timed_as_a_long_poll() -> None:
    """A route whose body asks the server to hold it (a ``timeout``) counts as ``long-poll``:
    its seconds are time waited for news, and would swamp the figures of calls."""
    seen = 0
    for handler in V1_HANDLERS:
        data = typing.get_type_hints(handler.fn, include_extras=True).get("data")
        body = typing.get_args(data)[0] if data is not None else None
        polls = "timeout" in getattr(body, "__struct_fields__", ())
        seen += polls
        for path in handler.paths:
            template = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)  # as the metrics name a route
            assert (metrics_module.route_kind(template) == "long-poll") == polls, template
    assert seen >= 4  # lease, leases, wait, job chunks: the check found what it looks for
