"""``fap watch``: folders mirrored into results, restarts that neither lose nor repeat work."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import Pipeline, server_log_tail
from tests.support.processes import FapProcess, ServerProcess, fap_argv, stop_all, wait_until

MiB = 1024 * 1024


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _uploads(pipeline: Pipeline) -> list[dict[str, object]]:
    with pipeline.api() as api:
        uploads: list[dict[str, object]] = api.get("/v1/uploads").json()["uploads"]
        return uploads


def test_watch_once_mirrors_the_tree_and_skips_what_it_must(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start_worker()
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    (inbox / "deep" / "er").mkdir(parents=True)
    taken = [inbox / "top.txt", inbox / "deep" / "er" / "nested file.csv"]
    for path in taken:
        path.write_text(f"data of {path.name}\n")
    skipped = [
        inbox / ".hidden",
        inbox / "download.part",
        inbox / "draft.tmp",
        inbox / "~$lock.docx",
    ]
    for path in skipped:
        path.write_text("not for analysis\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("outside the watched tree\n")
    (inbox / "link-out.txt").symlink_to(outside)
    os.mkfifo(inbox / "a-fifo")

    done = pipeline.fap("watch", str(inbox), "--results", str(results), "--once")

    assert done.returncode == 0, done.stderr + server_log_tail(pipeline)
    written = sorted(p.relative_to(results) for p in results.rglob("*.result.json"))
    assert written == sorted(Path(f"{p.relative_to(inbox)}.result.json") for p in taken), written
    for path in taken:
        result = json.loads((results / f"{path.relative_to(inbox)}.result.json").read_text())
        assert result["sha256"] == _sha256(path)

    again = pipeline.fap("watch", str(inbox), "--results", str(results), "--once")
    assert again.returncode == 0, again.stderr
    assert len(_uploads(pipeline)) == len(taken), "a restart must not upload finished files again"


def test_killed_watch_resumes_from_the_chunks_already_stored(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.start_worker()
    (pipeline.home / "config.toml").write_text("[client]\nchunk_size = 1048576\n")
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    inbox.mkdir()
    big = inbox / "big.bin"
    big.write_bytes(os.urandom(40 * MiB))
    watch_argv = ["watch", str(inbox), "--results", str(results)]
    watcher = FapProcess(
        argv=fap_argv(*watch_argv, "--bwlimit", str(8 * MiB)),
        log_path=tmp_path / "watch-1.log",
        env={
            **pipeline.env,
            "FAP_SERVER": pipeline.server.url,
            "FAP_TOKEN": pipeline.server.owner_token,
        },
    ).start()

    def some_chunks_stored() -> bool:
        uploads = _uploads(pipeline)
        return bool(uploads) and len(uploads[0]["chunks_stored"]) >= 4  # type: ignore[arg-type]

    try:
        wait_until(some_chunks_stored, 60, f"part of the upload\n{watcher.log()}")
        os.killpg(watcher.pid, signal.SIGKILL)
    finally:
        watcher.stop()
    [interrupted] = _uploads(pipeline)
    stored_before = len(interrupted["chunks_stored"])  # type: ignore[arg-type]
    assert interrupted["state"] != "done" or stored_before < 40

    resumed = pipeline.fap(*watch_argv, "--once", "--json")

    assert resumed.returncode == 0, resumed.stderr + server_log_tail(pipeline)
    [line] = [json.loads(x) for x in resumed.stdout.splitlines() if x.strip()]
    assert line["status"] == "done"
    assert 0 < line["bytes_sent"] < big.stat().st_size
    assert line["bytes_sent"] <= (40 - stored_before) * MiB
    [upload] = _uploads(pipeline)
    assert upload["id"] == interrupted["id"]
    assert upload["attempts"] == 1
    result = json.loads((results / "big.bin.result.json").read_text())
    assert result["sha256"] == _sha256(big)


def test_watch_rides_out_a_server_that_is_down(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    data = tmp_path / "data"
    server = start_server(data_dir=data)
    pipeline = Pipeline(server=server, tmp=tmp_path, home=tmp_path / "home", signals=tmp_path)
    pipeline.home.mkdir()
    server.stop()  # down before the watcher starts

    inbox, results = tmp_path / "inbox", tmp_path / "results"
    inbox.mkdir()
    files = [inbox / f"file-{i}.txt" for i in range(3)]
    for path in files:
        path.write_text(f"waiting for the server: {path.name}\n")
    watcher = FapProcess(
        argv=fap_argv("watch", str(inbox), "--results", str(results)),
        log_path=tmp_path / "watch.log",
        env={**pipeline.env, "FAP_SERVER": server.url, "FAP_TOKEN": server.owner_token},
    ).start()
    try:
        wait_until(lambda: "retry" in watcher.log().lower(), 60, "the watcher to report retrying")
        assert watcher.alive(), watcher.log()

        pipeline.server = start_server(data_dir=data, port=server.port)
        pipeline.start_worker()
        for path in files:
            result = results / f"{path.name}.result.json"
            wait_until(result.exists, 120, f"{result.name}\n{watcher.log()}", interval=0.2)
            assert json.loads(result.read_text())["sha256"] == _sha256(path)
    finally:
        watcher.stop()
        stop_all(pipeline.workers)
