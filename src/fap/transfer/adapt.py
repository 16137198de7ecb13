"""The zstd level of an upload, adapted to whichever of the link and the CPU is the limit.

As ``zstd --adapt`` does, the level follows what the pipeline shows rather than a model of rates:
an encoded chunk that waits for a free PUT means the link is the limit, so CPU is spent to send
less (one level up); a free PUT that waits for a chunk still being encoded means the CPU is the
limit, so less is spent per chunk (one level down). On a slow uplink an upload climbs to the
level that sends the fewest bytes the cores can still produce in time; on a fast link, or
loopback, it settles where compression keeps up with the link.

One control serves every file an uploader sends, so a watcher's link is learned once. The first
chunks of a file, encoded while nothing is in flight yet, are kept to zstd's default level or
below: until one is ready the link has nothing to send whatever the level, and at the highest
level a chunk takes a quarter of a second or more to encode.
"""

from __future__ import annotations

from fap.transfer.codec import MAX_LEVEL, MIN_LEVEL, ZSTD_LEVEL

__all__ = ("LevelControl",)


class LevelControl:
    def __init__(
        self, start: int = ZSTD_LEVEL, lowest: int = MIN_LEVEL, highest: int = MAX_LEVEL
    ) -> None:
        if not lowest <= start <= highest:
            raise ValueError(f"zstd level {start} is outside {lowest}..{highest}.")
        self._lowest = lowest
        self._highest = highest
        self.level = start

    @property
    def filling_level(self) -> int:
        """The level of a chunk encoded before the link has anything to send."""
        return min(self.level, ZSTD_LEVEL)

    def link_waits(self) -> None:
        """An encoded chunk waited for a free PUT: the link is the limit."""
        self.level = min(self._highest, self.level + 1)

    def cpu_waits(self) -> None:
        """A free PUT waited for a chunk to be encoded: the CPU is the limit."""
        self.level = max(self._lowest, self.level - 1)
