"""``fap watch --status DIR`` and ``fap status --local [DIR]``: what a watcher is doing.

Read from the journal, never from the watcher: it answers for a watcher that runs, one that
stopped, and one that was killed. A table on a terminal; elsewhere one tab-separated line per
file, or with ``--json`` one object per file, on stdout, and the watcher's own line on stderr,
so that stdout holds the files alone.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fap.cli.common import err_console, run
from fap.cli.listing import shown, when, write_json, write_rows

if TYPE_CHECKING:
    from fap.client import FileRecord, WatchRecord, WatchState

__all__ = ("show_status",)

# The journal's states, as a user reads them.
STATES = {
    "pending": "queued",
    "uploading": "uploading",
    "uploaded": "waiting",  # for its result
    "done": "done",
    "failed": "failed",
}
_COLUMNS = ("file", "state", "progress", "detail", "updated")


def show_status(directory: Path | None, *, server: str | None, json_output: bool) -> None:
    """Print the files of ``directory`` (of every watched directory, for None)."""
    from fap.client import read_watch_state

    state = run(read_watch_state(directory, server=server))
    watchers = [_watcher_line(watch) for watch in state.watches]
    if json_output:
        _say_on_stderr(watchers)
        write_json(_as_dict(state, record) for record in state.files)
        return
    rows = [_row(state, record) for record in state.files]
    if sys.stdout.isatty():
        title = "\n".join(watchers) or "Files the watchers journaled"
        write_rows(title, _COLUMNS, rows)
        if not rows:
            sys.stdout.write("No file yet.\n")
        return
    _say_on_stderr(watchers)
    write_rows("", _COLUMNS, rows)


def _say_on_stderr(lines: list[str]) -> None:
    for line in lines:
        err_console.print(line, markup=False, highlight=False)


def _watcher_line(watch: WatchRecord) -> str:
    if watch.running:
        doing = f"running (process {watch.pid}) since {when(watch.started_at)}"
    elif watch.stopped_at is not None:
        doing = f"stopped at {when(watch.stopped_at)}"
    else:
        doing = f"not running (process {watch.pid} ended without stopping)"
    return f"watcher of {shown(watch.root)}: {doing}"


def _name(state: WatchState, record: FileRecord) -> str:
    """The file as the user sees it: below the directory asked about, else the whole path."""
    path = Path(record.path)
    if state.root is not None and path.is_relative_to(state.root):
        return path.relative_to(state.root).as_posix()
    return record.path


def _progress(record: FileRecord) -> str:
    if record.chunk_count is None:
        return _size(record.size)
    return (
        f"{record.chunks_stored}/{record.chunk_count} chunks, "
        f"{_size(record.bytes_stored)} of {_size(record.size)}"
    )


def _detail(record: FileRecord) -> str | None:
    if record.state == "done":
        return record.result_path
    if record.state == "failed" or record.error is None:
        return record.error
    return f"retrying: {record.error}"  # a passing problem: the watcher tries again


def _row(state: WatchState, record: FileRecord) -> list[str]:
    return [
        _name(state, record),
        STATES[record.state],
        _progress(record),
        _detail(record) or "",
        when(record.updated_at),
    ]


def _as_dict(state: WatchState, record: FileRecord) -> dict[str, Any]:
    return {
        "file": _name(state, record),
        "path": record.path,
        "state": STATES[record.state],
        "size": record.size,
        "chunks_stored": record.chunks_stored,
        "chunk_count": record.chunk_count,
        "bytes_stored": record.bytes_stored,
        "upload_id": record.upload_id,
        "result_path": record.result_path,
        "error": record.error,
        "updated_at": record.updated_at,
        "server": record.server,
    }


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"
