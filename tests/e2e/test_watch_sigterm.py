"""``fap watch`` stopped with SIGTERM, as a service manager stops it: the chunks being sent land
and are journaled, the exit is 0 within 10 s, and the next run sends only what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.processes import FapProcess, fap_argv, wait_until

MiB = 1024 * 1024
CHUNKS = 40


def _upload(pipeline: Pipeline) -> dict[str, object] | None:
    with pipeline.api() as api:
        uploads: list[dict[str, object]] = api.get("/v1/uploads").json()["uploads"]
    return uploads[0] if uploads else None


def _stored(pipeline: Pipeline) -> int:
    upload = _upload(pipeline)
    return 0 if upload is None else len(upload["chunks_stored"])  # type: ignore[arg-type]


def _blob_puts(pipeline: Pipeline) -> float:
    """PUTs the server's blob store accepted (the embedded store serves them itself)."""
    text = httpx.get(f"{pipeline.server.url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fap_http_requests_total"
        and sample.labels.get("method") == "PUT"
        and sample.labels.get("route", "").startswith("/blobs/")
        and sample.labels.get("status") == "2xx"
    )


# What SIGTERM does is the client's alone: one backend shows it (the embedded one, whose blob
# store is the server itself and counts every PUT).
@pytest.mark.parametrize("pipeline", ["embedded"], indirect=True)
def test_sigterm_lets_the_chunks_in_flight_land_and_the_next_run_sends_the_rest(
    pipeline: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    pipeline.start_worker()
    (pipeline.home / "config.toml").write_text("[client]\nchunk_size = 1048576\n")
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    inbox.mkdir()
    big = inbox / "big.bin"
    big.write_bytes(os.urandom(CHUNKS * MiB))  # random: every chunk is stored raw, 1 MiB
    watch_argv = ["watch", str(inbox), "--results", str(results)]
    watcher = FapProcess(
        # Slow enough that the upload is in flight when the signal comes (20 s in all).
        argv=fap_argv(*watch_argv, "--bwlimit", "2M"),
        log_path=tmp_path / "watch.log",
        env={
            **pipeline.env,
            "FAP_SERVER": pipeline.server.url,
            "FAP_TOKEN": pipeline.server.owner_token,
        },
    ).start()
    assert watcher.process is not None
    try:
        wait_until(lambda: _stored(pipeline) >= 4, 120, f"part of the upload\n{watcher.log()}")
        watcher.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = watcher.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"fap watch did not exit within 60 s of SIGTERM:\n{watcher.log()}")
        took = time.monotonic() - signalled
    finally:
        watcher.stop()

    record_property("figures", f"fap watch: SIGTERM to exit in {took:.1f} s")
    assert code == 0, watcher.log()
    assert took < 10, f"{took:.1f} s from SIGTERM to exit\n{watcher.log()}"
    assert "Traceback" not in watcher.log()
    stored = _stored(pipeline)
    assert 4 <= stored < CHUNKS
    # Every PUT that landed was reported and journaled: none is lost, none is sent twice.
    assert _blob_puts(pipeline) == stored
    status = pipeline.fap("watch", "--status", str(inbox), "--json")
    assert status.returncode == 0, status.stderr
    [journaled] = [json.loads(line) for line in status.stdout.splitlines()]
    assert (journaled["file"], journaled["state"]) == ("big.bin", "uploading")
    assert (journaled["chunks_stored"], journaled["chunk_count"]) == (stored, CHUNKS)
    assert journaled["bytes_stored"] == stored * MiB
    assert "stopped at" in status.stderr

    resumed = pipeline.fap(*watch_argv, "--once", "--json")

    assert resumed.returncode == 0, resumed.stderr + server_log_tail(pipeline)
    [line] = [json.loads(x) for x in resumed.stdout.splitlines() if x.strip()]
    assert line["status"] == "done"
    assert line["bytes_sent"] == (CHUNKS - stored) * MiB
    upload = _upload(pipeline)
    assert upload is not None and upload["attempts"] == 1
    # Each chunk PUT once; the sealed result, a few hundred bytes, went with its completion.
    assert _blob_puts(pipeline) == CHUNKS, "each chunk PUT once"
    assert json.loads((results / "big.bin.result.json").read_text())["bytes"] == CHUNKS * MiB
