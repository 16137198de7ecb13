"""Which files a watch leaves alone."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import pytest

from fap.client import ignore_reason, ignored_name


@pytest.mark.parametrize(
    "name",
    [
        ".hidden",
        ".git/config",
        "sub/.cache/file.txt",
        "report.pdf.tmp",
        "movie.part",
        "setup.exe.crdownload",
        "~$budget.xlsx",
        ".notes.txt.swp",
        "notes.txt.swp",
        "notes.txt~",
        "DATA.TMP",
    ],
)
def test_hidden_temporary_and_partial_names_are_ignored(name: str) -> None:
    assert ignored_name(PurePath(name)) is not None


@pytest.mark.parametrize(
    "name", ["report.pdf", "sub/dir/data.csv", "tmp/file.txt", "partial results.txt", "a~b.txt"]
)
def test_ordinary_names_are_taken(name: str) -> None:
    assert ignored_name(PurePath(name)) is None


def test_a_regular_file_is_taken(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("1,2\n")
    assert ignore_reason(tmp_path / "data.csv", tmp_path) is None


def test_a_symlink_leaving_the_directory_is_ignored(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside.txt"
    root.mkdir()
    outside.write_text("secret\n")
    (root / "link.txt").symlink_to(outside)
    assert "outside" in (ignore_reason(root / "link.txt", root) or "")


def test_a_symlink_within_the_directory_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("data\n")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "real.txt")
    assert ignore_reason(tmp_path / "alias.txt", tmp_path) is None


def test_dangling_links_fifos_and_directories_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("dangling", "fifo", "dir", "gone"):
        assert ignore_reason(tmp_path / name, tmp_path) is not None, name


def test_the_results_directory_inside_the_tree_is_ignored(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "sub").mkdir(parents=True)
    (results / "sub" / "a.txt.result.json").write_text("{}")
    reason = ignore_reason(results / "sub" / "a.txt.result.json", tmp_path, exclude=[results])
    assert reason == "inside the results directory"
