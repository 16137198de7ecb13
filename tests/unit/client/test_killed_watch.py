"""A watch killed between asking for an upload and journalling it makes no second one on restart."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.unit.client.real_app import App

from fap.api import UPLOADS
from fap.client import JOURNAL_NAME, FolderSync, Journal


async def watch_once(app: App, inbox: Path) -> None:
    async with (
        app.runtime() as runtime,
        Journal(app.settings.home / JOURNAL_NAME, app.settings.server) as journal,
    ):
        summary = await FolderSync(runtime, journal, inbox, inbox.parent / "results").run(once=True)
        assert not summary.failed, summary


async def test_a_restart_after_a_kill_gets_the_upload_the_lost_answer_named(
    app: App, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "report.csv").write_bytes(b"a,b\n1,2\n" * 20_000)  # several chunks
    # The app makes the upload; its answer waits at the wire, and the watch is killed there:
    # what ``kill -9`` at that moment leaves behind.
    answer = app.wire.hold(
        lambda request: request.method == "POST" and request.url.path == UPLOADS, answered=True
    )

    async with asyncio.timeout(30):
        first = asyncio.create_task(watch_once(app, inbox))
        created = asyncio.create_task(answer.reached.wait())
        await asyncio.wait({first, created}, return_when=asyncio.FIRST_COMPLETED)
        assert answer.reached.is_set(), first.result()
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        (made,) = await app.uploads()
        assert made.chunks_stored == []  # the kill came before any chunk was sent

        await watch_once(app, inbox)  # the restart

        uploads = await app.uploads()
        assert [upload.id for upload in uploads] == [made.id]
        assert uploads[0].state == "done"
        assert app.completed == [made.id]
    assert (tmp_path / "results" / "report.csv.result.json").is_file()
