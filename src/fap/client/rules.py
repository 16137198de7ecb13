"""Which files in a watched directory are not to be uploaded, and why.

Hidden names, temporary and partial-download names (a browser's ``.crdownload``, an editor's
``.swp``, Office's ``~$`` lock files), anything that resolves outside the watched directory (a
symlink leaving it), the results directory itself, and anything that is not a regular file (a
FIFO would block the reader forever; a device has no end).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path, PurePath
from stat import S_ISREG

__all__ = ("TEMPORARY_PATTERNS", "ignore_reason", "ignored_name")

# Names that files carry while some program is still writing them, or that are scratch copies.
TEMPORARY_PATTERNS: tuple[str, ...] = (
    "*.tmp",
    "*.temp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.download",
    "*.opdownload",
    "*.filepart",
    "*.!ut",
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    "~$*",
    "#*#",
)


def ignored_name(relative: PurePath) -> str | None:
    """Why a path (relative to the watched directory) is ignored by its name alone, or None."""
    for part in relative.parts:
        if part.startswith("."):
            return "a hidden name"
    name = relative.name.lower()
    for pattern in TEMPORARY_PATTERNS:
        if fnmatch.fnmatchcase(name, pattern):
            return "a temporary or partial-download name"
    return None


def ignore_reason(path: Path, root: Path, *, exclude: Sequence[Path] = ()) -> str | None:
    """Why ``path`` (below the resolved directory ``root``) is not to be uploaded, or None.

    Looks at the file system (blocking): call it off the event loop.
    """
    try:
        relative = path.relative_to(root)
    except ValueError:
        return "outside the watched directory"
    if reason := ignored_name(relative):
        return reason
    for excluded in exclude:
        if path == excluded or excluded in path.parents:
            return "inside the results directory"
    try:
        real = path.resolve(strict=True)
        stat = real.stat()
    except (OSError, RuntimeError):  # gone, a dangling symlink, a symlink loop
        return "missing or a dangling link"
    if not real.is_relative_to(root):
        return "a link that leads outside the watched directory"
    if not S_ISREG(stat.st_mode):
        return "not a regular file"
    return None
