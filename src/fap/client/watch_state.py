"""What a watcher is doing, as its journal says: ``fap watch --status`` and ``fap retry``.

Both run beside a watcher that may be writing the journal at that moment. The status opens it
read-only; a retry changes failed rows alone (back to pending), and a running watcher notices
that by itself. Neither needs the server nor a token: the journal is on this machine. Unless a
server is named, they see the rows of every server (a directory is watched with one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fap.api import parse_servers
from fap.client.journal import JOURNAL_NAME, FileRecord, FileState, Journal, NoJournal, WatchRecord
from fap.config import fap_home
from fap.errors import InputError

__all__ = ("Retried", "WatchState", "journal_key", "read_watch_state", "retry_failed")


@dataclass(frozen=True, slots=True)
class WatchState:
    """The files below ``root`` (every file journaled, for None) and the watchers of it."""

    root: Path | None
    watches: list[WatchRecord]  # the latest first
    files: list[FileRecord]  # by path


@dataclass(frozen=True, slots=True)
class Retried:
    """One file ``fap retry`` was asked about: set back to pending, or left (not failed)."""

    path: str  # its journal key: the absolute path
    state: FileState  # before the retry
    retried: bool
    watcher: WatchRecord | None  # the running watcher that sends it again, if one does


def journal_key(path: Path) -> str:
    """The journal's name for ``path``: a watcher names its files below the resolved directory
    it watches, so the directories are resolved, not the file (which may be a symlink)."""
    absolute = path.absolute()
    return str(absolute.parent.resolve() / absolute.name)


async def read_watch_state(
    root: Path | None, *, server: str | None = None, home: Path | None = None
) -> WatchState:
    """What the journal holds of ``root`` (of every directory, for None); InputError when no
    watcher journaled it. ``home``: the fap home (default: FAP_HOME's)."""
    home = home or fap_home()
    directory = None if root is None else await asyncio.to_thread(root.resolve)
    try:
        async with Journal(home / JOURNAL_NAME, _server(server), read_only=True) as journal:
            watches = await journal.watches()
            files = await (
                journal.everything() if directory is None else journal.under(str(directory))
            )
    except NoJournal:
        if root is None:
            raise
        raise _not_watched(root) from None
    if root is not None and directory is not None:
        watches = [watch for watch in watches if directory.is_relative_to(watch.root)]
        if not watches and not files:
            raise _not_watched(root)
    return WatchState(directory, watches, files)


async def retry_failed(
    files: Sequence[Path],
    dirs: Sequence[Path] = (),
    *,
    server: str | None = None,
    home: Path | None = None,
) -> list[Retried]:
    """Set the failed ones of ``files`` (and every failed file below ``dirs``, or a directory
    among ``files``; with neither, every failed file journaled) back to pending, to be sent
    again as new uploads.

    A file the journal does not know is an InputError, before anything changes.
    """
    path = (home or fap_home()) / JOURNAL_NAME
    named_dirs = [file for file in files if await asyncio.to_thread(file.is_dir)]
    files = [file for file in files if file not in named_dirs]
    dirs = [*dirs, *named_dirs]
    if not await asyncio.to_thread(path.is_file):  # not a journal to create: there is none
        if files:
            raise _unknown([str(file) for file in files])
        raise _not_watched(dirs[0]) if dirs else NoJournal(path)
    keys = [journal_key(file) for file in files]
    async with Journal(path, _server(server)) as journal:
        named: list[FileRecord] = []
        unknown: list[str] = []
        for file, key in zip(files, keys, strict=True):
            record = await journal.get(key)
            if record is None:
                unknown.append(str(file))
            else:
                named.append(record)
        if unknown:
            raise _unknown(unknown)
        found: list[FileRecord] = []
        for directory in dirs:
            root = await asyncio.to_thread(directory.resolve)
            if not await journal.under(str(root)):
                raise _not_watched(directory)
            found += await journal.under(str(root), "failed")
        if not files and not dirs:
            found = await journal.everything("failed")
        running = [watch for watch in await journal.watches() if watch.running]
        outcomes: list[Retried] = []
        for record in _unique([*named, *found]):
            retried = record.state == "failed" and await journal.retry(record.path)
            outcomes.append(
                Retried(record.path, record.state, retried, _watcher_of(record.path, running))
            )
    return outcomes


def _server(server: str | None) -> str | None:
    # In the form the journal names servers by (fap.client.state.resolve_server's).
    return None if server is None else ",".join(parse_servers(server))


def _not_watched(root: Path) -> InputError:
    return InputError(
        f"No watcher has journaled {root}: fap watch {root} starts one (a watcher of another "
        "fap home, FAP_HOME, keeps its own journal)."
    )


def _unknown(files: list[str]) -> InputError:
    return InputError(
        f"No watcher has journaled {', '.join(files)}: fap retry sends again the files a "
        "watcher got no result for (fap watch --status DIR lists them)."
    )


def _unique(records: list[FileRecord]) -> list[FileRecord]:
    """Each path once (named and found in a directory too), where it came first."""
    first: dict[str, FileRecord] = {}
    for record in records:
        first.setdefault(record.path, record)
    return list(first.values())


def _watcher_of(path: str, running: list[WatchRecord]) -> WatchRecord | None:
    return next((watch for watch in running if Path(path).is_relative_to(watch.root)), None)
