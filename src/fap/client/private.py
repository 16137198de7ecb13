"""Files and directories only their user can read: what fap keeps on a desktop is private.

The fap home holds the journal (every file name seen), the server last used and perhaps the
device key, which opens every result. fap creates its directories 0700 and its files 0600,
whatever the umask, and tightens a home it finds open to others if it may, else says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = (
    "DIR_MODE",
    "FILE_MODE",
    "make_private_dir",
    "secure_home",
    "tighten_file",
    "write_private_text",
)

DIR_MODE = 0o700
FILE_MODE = 0o600

log = logging.getLogger(__name__)


def make_private_dir(path: Path) -> None:
    """Create ``path`` and each missing parent 0700 (``mkdir -p`` leaves parents to the umask)."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another fap: it made it private too
        # mkdir's mode passes through the umask, which may take bits away but must not decide.
        directory.chmod(DIR_MODE)


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once (readers see the old file or the new one), 0600
    from the start whatever the umask, its directory made private first; OSError if it cannot."""
    make_private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, FILE_MODE)  # a temp file left by a killed run keeps its old mode
        handle.write(text)
    temp.replace(path)


def tighten_file(path: Path) -> None:
    """Make an existing file 0600; one that is not there is no failure."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(FILE_MODE)


def secure_home(home: Path, warn: Callable[[str], None] | None = None) -> None:
    """Tighten an existing fap home that others may read, if it is this user's; else warn.

    A home that does not exist yet is left alone: whatever writes to it first creates it 0700.
    """
    try:
        status = home.stat()
    except FileNotFoundError:
        return
    except OSError as error:
        (warn or log.warning)(f"The fap home {home} cannot be checked: {error.strerror}.")
        return
    if not stat.S_ISDIR(status.st_mode) or not stat.S_IMODE(status.st_mode) & 0o077:
        return
    if status.st_uid == os.geteuid():
        try:
            home.chmod(stat.S_IMODE(status.st_mode) & ~0o077)
        except OSError as error:
            problem = f"it cannot be made private ({error.strerror})"
        else:
            return
    else:
        problem = "it belongs to another user"
    (warn or log.warning)(
        f"The fap home {home} is open to other users and {problem}; "
        f"run chmod 700 {home} or set FAP_HOME to a private directory."
    )
