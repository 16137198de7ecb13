"""Finding files to upload in a directory: the start-up scan, change events, stability.

A file is taken once it is *stable*: its size and mtime stayed the same over the settle interval,
so a file still being copied or downloaded is not sent half-written.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from fap.client.rules import ignored_name

__all__ = ("Settler", "scan", "watch_changes")


@dataclass(frozen=True, slots=True)
class _Sighting:
    size: int
    mtime_ns: int
    since: float  # monotonic time this size and mtime were first seen


class Settler:
    """Tells whether a file kept its size and mtime for ``settle_seconds``.

    A file is stable once two sightings ``settle_seconds`` apart agree — or at its first sighting
    if its mtime is already that old (a file that sat there before start-up need not wait).
    """

    def __init__(
        self,
        settle_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._sightings: dict[Path, _Sighting] = {}

    def is_stable(self, path: Path, size: int, mtime_ns: int) -> bool:
        now = self._clock()
        seen = self._sightings.get(path)
        if seen is None or (seen.size, seen.mtime_ns) != (size, mtime_ns):
            self._sightings[path] = _Sighting(size, mtime_ns, now)
            age = self._wall_clock() - mtime_ns / 1e9
            return seen is None and age >= self.settle_seconds
        return now - seen.since >= self.settle_seconds

    def forget(self, path: Path) -> None:
        self._sightings.pop(path, None)


def scan(root: Path, *, exclude: Sequence[Path] = ()) -> list[Path]:
    """Every file below ``root`` whose name is not ignored (blocking: run it in a thread).

    Symlinked directories are not followed (that way lie loops and trees outside ``root``);
    hidden and excluded directories are not entered at all.
    """
    found: list[Path] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        dirs[:] = [
            name
            for name in sorted(dirs)
            if not name.startswith(".") and (here / name) not in exclude
        ]
        for name in sorted(files):
            path = here / name
            if ignored_name(path.relative_to(root)) is None:
                found.append(path)
    return found


async def watch_changes(
    root: Path, *, exclude: Sequence[Path] = (), stop: asyncio.Event | None = None
) -> AsyncIterator[list[Path]]:
    """Batches of paths below ``root`` that appeared or changed, until ``stop`` is set."""
    async for changes in watchfiles.awatch(
        root,
        watch_filter=None,
        stop_event=stop,
        debounce=200,
        step=50,
        recursive=True,
        ignore_permission_denied=True,
    ):
        names = [name for change, name in changes if change != watchfiles.Change.deleted]
        if batch := await asyncio.to_thread(_expand, names, exclude):
            yield batch


def _expand(names: list[str], exclude: Sequence[Path]) -> list[Path]:
    # A directory moved in whole raises one event for itself and none for its files: scan it.
    paths: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir() and not path.is_symlink():
            paths.extend(scan(path, exclude=exclude))
        else:
            paths.append(path)
    return paths
