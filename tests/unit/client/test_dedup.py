"""Dedup, as the client sees it: a file analysed before is answered with that analysis — its
result fetched and written again, not one chunk PUT — by ``fap upload`` (small files in batches,
larger ones chunk by chunk) and by ``fap watch``; ``--no-dedup`` sends it all the same."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.client.real_app import App
from tests.unit.client.test_folder import Heard, folder
from tests.unit.server.harness import CHUNK

from fap.client import FileOutcome, Runtime, upload_files


def _files(directory: Path) -> list[Path]:
    """A small file (sent in a batch) and one of four chunks (sent chunk by chunk)."""
    directory.mkdir(parents=True, exist_ok=True)
    small = directory / "small.csv"
    small.write_bytes(b"1,2,3\n" * 100)
    large = directory / "large.log"
    large.write_bytes(b"".join(b"line %d\n" % n for n in range(40_000))[: 3 * CHUNK + 100])
    return [small, large]


def _result(outcome: FileOutcome) -> object:
    assert outcome.result_path is not None
    return json.loads(Path(outcome.result_path).read_text())


async def test_a_file_uploaded_again_gets_its_result_again_and_nothing_is_sent(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    files = _files(tmp_path)
    first = await upload_files(runtime, files, results_dir=tmp_path / "first")
    puts = len(app.puts())

    again = await upload_files(runtime, files, results_dir=tmp_path / "again")

    assert [o.status for o in again] == ["done", "done"]
    assert len(app.puts()) == puts  # not one chunk PUT
    assert [o.upload_id for o in again] == [o.upload_id for o in first]
    assert len(await app.uploads()) == 2 and len(app.completed) == 2
    for earlier, answered in zip(first, again, strict=True):
        assert _result(answered) == _result(earlier)
        assert Path(str(answered.result_path)).parent == tmp_path / "again"
        assert (earlier.deduplicated, earlier.bytes_sent > 0) == (False, True)
        # What the --json line says of it.
        line = answered.as_dict()
        assert (line["deduplicated"], line["bytes_sent"]) == (True, 0)
        assert line.keys() == earlier.as_dict().keys()


async def test_without_dedup_a_file_is_sent_and_analysed_anew(
    runtime: Runtime, app: App, tmp_path: Path
) -> None:
    files = _files(tmp_path)
    first = await upload_files(runtime, files, results_dir=tmp_path / "first")
    puts = len(app.puts())

    again = await upload_files(runtime, files, results_dir=tmp_path / "again", dedup=False)

    assert [o.status for o in again] == ["done", "done"]
    assert len(app.puts()) == puts + 1 + 4
    assert not {o.upload_id for o in again} & {o.upload_id for o in first}
    assert not any(o.deduplicated for o in again)
    assert [_result(o) for o in again] == [_result(o) for o in first]


async def test_a_watch_is_answered_with_the_analyses_of_the_same_files_done_before(
    app: App, tmp_path: Path
) -> None:
    """The same files under the same relative names in another watched directory: the small
    one and the one of many chunks are each answered, and their results written."""
    one, two = tmp_path / "one" / "inbox", tmp_path / "two" / "inbox"
    _files(one)
    _files(two)
    async with folder(app, one) as (sync, _):
        assert not (await sync.run(once=True)).failed
    puts = len(app.puts())
    heard = Heard()

    async with folder(app, two, heard) as (sync, runtime):
        summary = await sync.run(once=True)

    assert not summary.failed
    assert len(app.puts()) == puts and runtime.uploader.bytes_sent == 0
    assert len(await app.uploads()) == 2
    assert sorted((o.file, o.deduplicated, earlier) for o, earlier in heard.outcomes) == [
        (str(two / "large.log"), True, False),
        (str(two / "small.csv"), True, False),
    ]
    for name in ("small.csv", "large.log"):
        written = tmp_path / "two" / "results" / f"{name}.result.json"
        assert json.loads(written.read_text())["name"] == name
