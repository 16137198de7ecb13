"""Run a command as an unprivileged user (``nobody``), for tests of what fap does without root.

Root switches with ``setpriv``. The tests' own interpreter may live where nobody cannot reach it
(pyenv under a 0700 /root): then the command runs in a private mount namespace in which each such
directory is an empty, open tmpfs with the interpreter's installation — and only that — bound back
in. The real directory is untouched and, in that namespace, hidden: nobody sees less than before.

A test that is not root runs its command as itself: it is unprivileged already.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import fap

__all__ = ("as_nobody", "nobody")


def nobody() -> tuple[int, int]:
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _open_to_others(path: Path) -> bool:
    mode = path.stat().st_mode
    return bool(mode & stat.S_IXOTH)


def _blocked(path: Path) -> Path | None:
    """The outermost directory above ``path`` that others cannot enter, if any."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not _open_to_others(parent):
            return parent
    return None


def _needed(reach: Sequence[Path]) -> list[Path]:
    """What the command needs to reach: the interpreter's installation and environment, fap's
    source (an editable install), and ``reach``."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    paths.add(Path(sys.executable).resolve().parent)
    paths.add(Path(fap.__file__).resolve().parent.parent)
    paths.update(path.resolve() for path in reach)
    return sorted(p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths))


def as_nobody(argv: Sequence[str], stage: Path, reach: Sequence[Path] = ()) -> list[str]:
    """``argv`` as nobody would run it, able to reach ``reach`` (the tests' code, say);
    ``stage``: an empty directory for the mounts' sake."""
    if os.geteuid() != 0:
        return list(argv)
    uid, gid = nobody()
    setpriv = [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--",
    ]
    hidden: dict[Path, list[Path]] = {}
    for path in _needed(reach):
        top = _blocked(path)
        if top is not None:
            hidden.setdefault(top, []).append(path)
    if not hidden:
        return [*setpriv, *argv]
    lines = ["set -e"]
    kept: list[tuple[Path, Path]] = []
    for top, paths in hidden.items():
        for path in paths:
            keep = stage / str(len(kept))
            keep.mkdir(parents=True)
            kept.append((path, keep))
            lines.append(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(keep))}")
        lines.append(f"mount -t tmpfs -o mode=0755 fap-test {shlex.quote(str(top))}")
    for path, keep in kept:
        lines.append(f"mkdir -p {shlex.quote(str(path))}")
        lines.append(f"mount --move {shlex.quote(str(keep))} {shlex.quote(str(path))}")
    lines.append(f'exec {shlex.join(setpriv)} "$@"')
    unshare = shutil.which("unshare") or "unshare"
    return [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        "\n".join(lines),
        "sh",
        *argv,
    ]
