"""``fap upload``'s work: every file gets its decrypted result, or its reason."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.unit.client.conftest import no_worker
from tests.unit.client.real_app import App

from fap.api import UPLOADS_WAIT
from fap.client import Runtime, upload_files, write_atomic


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
