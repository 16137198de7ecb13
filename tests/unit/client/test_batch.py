"""``fap upload``'s work: every file gets its decrypted result, or its reason."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from tests.unit.client.conftest import no_worker
from tests.unit.client.real_app import App

import fap.client.uploader as uploader_module
from fap.api import DEVICES, UPLOADS, UPLOADS_WAIT
from fap.client import BatchFile, FileOutcome, Runtime, files_in, upload_files, write_atomic
from fap.client.batch import FILES_IN_FLIGHT, NOT_AWAITED, NOT_SENT
from fap.errors import ServerError


def _files(tmp_path: Path, **contents: bytes) -> list[Path]:
    paths = []
    for name, data in contents.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)
    return paths


async def test_each_file_gets_its_decrypted_result_written_beside_the_others(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    files = _files(tmp_path, **{"a.txt": b"alpha\n" * 50_000, "b.bin": b"", "c d.csv": b"1,2\n"})
    results = tmp_path / "results"

    outcomes = await upload_files(runtime, files, results_dir=results)

    assert [o.status for o in outcomes] == ["done"] * 3
    for path, outcome in zip(files, outcomes, strict=True):
        assert outcome.file == str(path)
        assert outcome.result_path == str(results / f"{path.name}.result.json")
        result = json.loads(Path(outcome.result_path).read_text())
        assert result == {"name": path.name, "size": path.stat().st_size, "sha256": _sha(path)}
    assert sorted(p.name for p in results.iterdir()) == [
        "a.txt.result.json",
        "b.bin.result.json",
        "c d.csv.result.json",
    ]
    assert outcomes[0].as_dict().keys() >= {"file", "upload_id", "status", "result_path", "error"}


def _registration(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path == DEVICES


def _creates(app: App) -> list[str]:
    return [s.path for s in app.wire.sent if s.method == "POST" and s.path.startswith(UPLOADS)]


@no_worker
async def test_files_are_hashed_while_the_device_registers_but_none_is_created_before(
    runtime: Runtime, app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Results are sealed to the devices registered: an upload created (and analysed, or
    # answered from an earlier analysis) before this device is would have none for it.
    files = _files(tmp_path, **{"big.log": b"a log line\n" * 300_000, "small.txt": b"tiny\n"})
    hashed: list[str] = []
    stat_and_hash = uploader_module._stat_and_hash

    def recording(path: Path) -> tuple[os.stat_result, str]:
        hashed.append(path.name)
        return stat_and_hash(path)

    monkeypatch.setattr(uploader_module, "_stat_and_hash", recording)
    registration = app.wire.hold(_registration)
    batch = asyncio.create_task(
        upload_files(runtime, files, results_dir=tmp_path / "results", wait=False)
    )
    await app.wire.until(lambda: registration.waiting == 1, "the device to register")
    await app.wire.until(lambda: len(hashed) == 2, "both files to be hashed meanwhile")
    await asyncio.sleep(0.05)  # time the files would take to be created, were they let
    assert _creates(app) == []

    registration.release()
    outcomes = await batch
    assert [o.status for o in outcomes] == ["uploaded", "uploaded"]
    assert _creates(app)


async def test_a_device_the_server_refuses_ends_the_batch_before_any_upload(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    files = _files(tmp_path, **{"a.txt": b"alpha\n" * 50_000, "b.txt": b"beta\n"})
    app.wire.refuse(_registration, status=400, detail="The device's key is not valid.")

    with pytest.raises(ServerError, match="key is not valid"):
        await upload_files(runtime, files, results_dir=tmp_path / "results")
    assert _creates(app) == []


async def test_small_results_come_in_the_waits_answer_and_nothing_is_fetched(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    files = _files(tmp_path, **{f"f{n}.txt": b"line\n" * n for n in range(1, 6)})
    outcomes = await upload_files(runtime, files, results_dir=tmp_path / "results")
    assert [o.status for o in outcomes] == ["done"] * 5
    asked = [s for s in app.wire.sent if s.method == "GET" and s.path.endswith("/result")]
    assert asked == []  # each sealed result came with the wait's answer
    assert app.result_gets() == []


async def test_results_stored_at_urls_are_fetched_without_asking_the_api_for_each(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    app.results_by_url = True  # as a large result is
    files = _files(tmp_path, **{f"f{n}.txt": b"line\n" * n for n in range(1, 6)})
    outcomes = await upload_files(runtime, files, results_dir=tmp_path / "results")
    assert [o.status for o in outcomes] == ["done"] * 5
    asked = [s for s in app.wire.sent if s.method == "GET" and s.path.endswith("/result")]
    assert asked == []  # each result's URL came with the wait's answer
    assert len(app.result_gets()) == 5


async def test_a_failed_job_says_why_and_writes_nothing(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    app.fail_with = "the engine crashed (exit 3)"
    [path] = _files(tmp_path, **{"crash.txt": b"boom\n"})

    [outcome] = await upload_files(runtime, [path], results_dir=tmp_path / "results")

    assert outcome.status == "failed"
    assert outcome.upload_id is not None
    assert outcome.error is not None and "the engine crashed (exit 3)" in outcome.error
    assert not (tmp_path / "results").exists()
    [failed] = await app.uploads()
    assert (failed.id, failed.state) == (outcome.upload_id, "failed")


@no_worker  # nothing would ever finish
async def test_without_waiting_files_are_only_uploaded(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    [path] = _files(tmp_path, **{"later.txt": b"later\n"})

    [outcome] = await upload_files(runtime, [path], results_dir=tmp_path / "r", wait=False)

    [upload] = await app.uploads()
    assert (outcome.status, outcome.upload_id) == ("uploaded", upload.id)
    assert upload.chunks_stored == [0]
    assert not [sent for sent in app.wire.sent if sent.path == UPLOADS_WAIT]
    assert not (tmp_path / "r").exists()


def test_a_result_is_replaced_whole_and_no_temporary_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "r.result.json"
    write_atomic(target, b'{"v": 1}')
    write_atomic(target, b'{"v": 2}')
    assert target.read_bytes() == b'{"v": 2}'
    assert [p.name for p in target.parent.iterdir()] == ["r.result.json"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_file_named_by_its_path_in_a_tree_has_its_result_mirrored_there(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    tree = tmp_path / "build"
    (tree / "logs" / "deep").mkdir(parents=True)
    files = [
        BatchFile(_write(tree / "logs" / "app.log", b"one\n"), "logs/app.log"),
        BatchFile(_write(tree / "logs" / "deep" / "app.log", b"two\n"), "logs/deep/app.log"),
    ]
    results = tmp_path / "results"

    outcomes = await upload_files(runtime, files, results_dir=results)

    assert [o.status for o in outcomes] == ["done", "done"]
    for file, outcome in zip(files, outcomes, strict=True):
        assert outcome.file == str(file.path)
        assert outcome.result_path == str(results / f"{file.name}.result.json")
        # The upload carries the same name: the engine and fap results list see the path.
        assert json.loads(Path(outcome.result_path).read_text())["name"] == file.name
    for directory in (results / "logs", results / "logs" / "deep"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((results / "logs" / "app.log.result.json").stat().st_mode) == 0o600


@no_worker  # nothing would ever finish: only the stop ends this batch
async def test_with_fail_fast_the_first_failure_stops_every_other_file(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    gone = tmp_path / "gone.txt"  # fails as it is read
    others = _files(tmp_path, **{f"f{n}.txt": b"x" * n for n in range(2 * FILES_IN_FLIGHT)})
    finished: list[str] = []

    class Last:
        def started(self, file: str, size: int) -> None:
            pass

        def advanced(self, file: str, raw_bytes: int) -> None:
            pass

        def uploaded(self, outcome: FileOutcome) -> None:
            pass

        def finished(self, outcome: FileOutcome) -> None:
            finished.append(outcome.file)

    outcomes = await upload_files(
        runtime, [gone, *others], results_dir=tmp_path / "r", fail_fast=True, reporter=Last()
    )

    assert outcomes[0].status == "failed"
    assert outcomes[0].error == f"{gone} does not exist."
    stopped = outcomes[1:]
    assert {o.status for o in stopped} == {"failed"}
    assert {o.error for o in stopped} <= {NOT_SENT, NOT_AWAITED}
    for outcome in stopped:
        # Uploaded ones say so, with their id; the others were never created.
        assert (outcome.error == NOT_AWAITED) == (outcome.upload_id is not None)
    # Only the files already in flight at the failure can have started.
    assert sum(o.error == NOT_SENT for o in stopped) >= len(others) - FILES_IN_FLIGHT
    assert len(await app.uploads()) <= FILES_IN_FLIGHT
    assert sorted(finished) == sorted(o.file for o in outcomes), "each file's last word, once"


@no_worker
async def test_without_fail_fast_a_file_that_fails_leaves_the_others_be(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    gone = tmp_path / "gone.txt"
    [kept] = _files(tmp_path, **{"kept.txt": b"kept\n"})

    outcomes = await upload_files(runtime, [gone, kept], results_dir=tmp_path / "r", wait=False)

    assert [o.status for o in outcomes] == ["failed", "uploaded"]


def test_a_directory_gives_what_fap_watch_would_take_named_by_relative_path(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "build"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / ".cache").mkdir()
    (tree / "results").mkdir()
    taken = ["top.txt", "sub/a.csv", "sub/deeper/a.csv"]
    for name in taken:
        _write(tree / name, name.encode())
    for name in (".hidden", ".cache/blob", "draft.tmp", "results/old.result.json"):
        _write(tree / name, b"not for analysis\n")
    outside = _write(tmp_path / "outside.txt", b"outside\n")
    (tree / "link-out.txt").symlink_to(outside)
    (tree / "loop").symlink_to(tree, target_is_directory=True)  # followed, it would never end
    os.mkfifo(tree / "a-fifo")

    found = files_in(tree, exclude=((tree / "results").resolve(),))

    assert sorted(found, key=lambda f: f.name) == sorted(
        (BatchFile(tree / name, name) for name in taken), key=lambda f: f.name
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
