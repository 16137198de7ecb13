"""Stable-file detection and the start-up scan."""

from __future__ import annotations

from pathlib import Path

from fap.client import Settler, scan

NOW = 1_800_000_000.0
NS = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_file_is_stable_once_unchanged_for_the_settle_interval() -> None:
    clock = Clock()
    settler = Settler(1.0, clock=clock, wall_clock=lambda: NOW)
    path, fresh = Path("f"), int(NOW * NS)  # modified just now
    assert not settler.is_stable(path, 10, fresh)
    clock.now += 0.5
    assert not settler.is_stable(path, 10, fresh)
    clock.now += 0.6
    assert settler.is_stable(path, 10, fresh)


def test_a_growing_file_is_not_stable_until_it_stops_growing() -> None:
    clock = Clock()
    settler = Settler(1.0, clock=clock, wall_clock=lambda: NOW)
    path = Path("download.bin")
    for size in range(1, 6):
        clock.now += 0.9
        assert not settler.is_stable(path, size * 100, int((NOW + size) * NS))
    clock.now += 0.9
    assert not settler.is_stable(path, 500, int((NOW + 5) * NS))
    clock.now += 0.2
    assert settler.is_stable(path, 500, int((NOW + 5) * NS))


def test_a_file_whose_mtime_is_old_enough_is_stable_at_first_sight() -> None:
    settler = Settler(1.0, clock=Clock(), wall_clock=lambda: NOW)
    assert settler.is_stable(Path("old"), 10, int((NOW - 60) * NS))


def test_a_file_touched_after_first_sight_starts_over() -> None:
    clock = Clock()
    settler = Settler(1.0, clock=clock, wall_clock=lambda: NOW)
    path = Path("f")
    assert settler.is_stable(path, 10, int((NOW - 60) * NS))
    assert not settler.is_stable(path, 10, int(NOW * NS))  # rewritten with the same size
    clock.now += 1.0
    assert settler.is_stable(path, 10, int(NOW * NS))


def test_scan_lists_files_in_order_and_skips_hidden_trees_and_excluded_dirs(
    tmp_path: Path,
) -> None:
    for name in ("b.txt", "a/z.csv", "a/b/c.bin", ".git/HEAD", "x/.hidden", "res/out.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "skip.part").write_text("x")
    (tmp_path / "loop").symlink_to(tmp_path / "a")  # a symlinked directory is not entered

    found = [p.relative_to(tmp_path).as_posix() for p in scan(tmp_path, exclude=[tmp_path / "res"])]

    assert sorted(found) == ["a/b/c.bin", "a/z.csv", "b.txt"]
