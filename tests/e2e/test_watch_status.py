"""``fap watch --status`` beside a real watcher, and ``fap retry`` picked up by a running one:
what a user of a desktop daemon asks it while it works."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.processes import FapProcess, fap_argv, wait_until

MiB = 1024 * 1024
BIG_FILES = 5  # one more than a watcher sends at once: one of them waits its turn


def _status(pipeline: Pipeline, inbox: Path) -> dict[str, dict[str, Any]]:
    """``fap watch --status INBOX --json``, by file."""
    done = pipeline.fap("watch", "--status", str(inbox), "--json")
    assert done.returncode == 0, done.stderr
    return {item["file"]: item for item in map(json.loads, done.stdout.splitlines())}


def _uploads_named(pipeline: Pipeline, name: str) -> list[dict[str, Any]]:
    with pipeline.api() as api:
        uploads: list[dict[str, Any]] = api.get("/v1/uploads").json()["uploads"]
    return [upload for upload in uploads if upload["name"] == name]


def _watcher(pipeline: Pipeline, inbox: Path, log: Path, *extra: str) -> FapProcess:
    return FapProcess(
        argv=fap_argv("watch", str(inbox), "--results", str(inbox.parent / "results"), *extra),
        log_path=log,
        env={
            **pipeline.env,
            "FAP_SERVER": pipeline.server.url,
            "FAP_TOKEN": pipeline.server.owner_token,
        },
    ).start()


def _stop(watcher: FapProcess) -> None:
    assert watcher.process is not None
    watcher.process.send_signal(signal.SIGTERM)
    assert watcher.process.wait(timeout=60) == 0, watcher.log()


# The journal is the client's: one backend shows it.
@pytest.mark.parametrize("pipeline", ["embedded"], indirect=True)
def test_status_shows_each_file_of_a_running_watcher_and_retry_sends_a_failed_one_again(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    (pipeline.home / "config.toml").write_text("[client]\nchunk_size = 1048576\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ok.txt").write_text("analysed\n")
    (inbox / "error-bad.txt").write_text("refused by the analyzer\n")
    worker = pipeline.start_worker(analyzer="tests.e2e.analyzers:by_name")

    first = pipeline.fap("watch", str(inbox), "--results", str(tmp_path / "results"), "--once")
    assert first.returncode == 7, first.stderr + server_log_tail(pipeline)
    worker.stop()  # from here on, uploads wait for a result

    after_once = _status(pipeline, inbox)
    assert after_once["ok.txt"]["state"] == "done"
    assert after_once["ok.txt"]["result_path"].endswith("ok.txt.result.json")
    assert after_once["error-bad.txt"]["state"] == "failed"
    assert "refuses files named error-" in after_once["error-bad.txt"]["error"]

    # A running watcher: a new file waits for its result; a retried one is sent again.
    (inbox / "waiting.txt").write_text("no worker to analyse it\n")
    watcher = _watcher(pipeline, inbox, tmp_path / "watch-1.log")
    try:
        wait_until(
            lambda: _status(pipeline, inbox).get("waiting.txt", {}).get("state") == "waiting",
            120,
            f"waiting.txt to wait for its result\n{watcher.log()}",
            interval=0.5,
        )
        retried = pipeline.fap("retry", str(inbox / "error-bad.txt"))
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout == (
            f"{inbox / 'error-bad.txt'}: sent again by the running watcher "
            f"(process {watcher.pid})\n"
        )
        wait_until(
            lambda: len(_uploads_named(pipeline, "error-bad.txt")) == 2,
            120,
            f"error-bad.txt sent again\n{watcher.log()}",
            interval=0.5,
        )
        wait_until(
            lambda: _status(pipeline, inbox)["error-bad.txt"]["state"] == "waiting",
            120,
            "the journal to say so",
            interval=0.5,
        )
        _stop(watcher)
    finally:
        watcher.stop()
    again = _status(pipeline, inbox)["error-bad.txt"]
    assert again["upload_id"] != after_once["error-bad.txt"]["upload_id"]
    assert again["error"] is None

    # A slow link: some files uploading, chunk by chunk, and one queued behind them.
    for number in range(BIG_FILES):
        (inbox / f"big-{number}.bin").write_bytes(os.urandom(8 * MiB))
    watcher = _watcher(pipeline, inbox, tmp_path / "watch-2.log", "--bwlimit", "1M")
    try:

        def uploading_and_queued() -> bool:
            states = [item for name, item in _status(pipeline, inbox).items() if "big" in name]
            return any(
                item["state"] == "uploading" and item["chunks_stored"] >= 1 for item in states
            ) and any(item["state"] == "queued" for item in states)

        wait_until(uploading_and_queued, 120, f"big files in flight\n{watcher.log()}", 0.5)
        files = _status(pipeline, inbox)
        plain = pipeline.fap("watch", "--status", str(inbox))
        local = pipeline.fap("status", "--local", str(inbox), "--json")
    finally:
        watcher.stop()

    assert (files["ok.txt"]["state"], files["waiting.txt"]["state"]) == ("done", "waiting")
    bigs = [files[f"big-{number}.bin"] for number in range(BIG_FILES)]
    moving = [item for item in bigs if item["state"] == "uploading" and item["chunks_stored"]]
    assert moving, bigs
    for item in moving:
        assert item["chunk_count"] == 8
        assert item["bytes_stored"] == item["chunks_stored"] * MiB < 8 * MiB
    assert [item["state"] for item in bigs].count("queued") >= 1
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.startswith(f"watcher of {inbox.resolve()}: running (process ")
    lines = {line.split("\t")[0]: line.split("\t")[1:] for line in plain.stdout.splitlines()}
    assert lines["ok.txt"][:1] == ["done"]
    assert lines["waiting.txt"][:1] == ["waiting"]
    assert any(
        fields[0] == "uploading" and fields[1].endswith(" of 8.0 MiB") for fields in lines.values()
    )
    assert local.returncode == 0, local.stderr
    assert {json.loads(line)["file"] for line in local.stdout.splitlines()} == set(files)


@pytest.mark.parametrize("pipeline", ["embedded"], indirect=True)
def test_status_of_a_directory_no_watcher_journaled_says_so(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    done = pipeline.fap("watch", "--status", str(tmp_path))

    assert done.returncode == 3
    assert done.stderr.startswith(f"error: No watcher has journaled {tmp_path}:")
    assert "Traceback" not in done.stderr
