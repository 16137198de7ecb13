"""fap creates its directories 0700 and its files 0600: the check, over any tree fap wrote.

    loose = loose_modes(home, server.data_dir, allowed=[results_dir])
    assert not loose, "\n".join(loose)

``allowed`` names the paths a user chose and fap only writes into (an inbox, a results dir): those
and everything under them are theirs to set, so they are left out. One stricter mode is right
too: a sealed blob is 0400, read-only even for the server, so that nothing rewrites it.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ("DIR_MODE", "FILE_MODES", "loose_modes")

DIR_MODE = 0o700
FILE_MODES = (0o600, 0o400)


def loose_modes(*roots: Path, allowed: Iterable[Path] = ()) -> list[str]:
    """Each directory (the roots included) that is not 0700, and each file or socket that is
    not 0600 (or 0400), as ``path: 0o755, want 0o700``. Symlinks are not followed."""
    skip = [path.resolve() for path in allowed]
    found: list[str] = []
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            if any(path.resolve().is_relative_to(s) for s in skip) or path.is_symlink():
                continue
            mode = path.lstat().st_mode
            wanted = (DIR_MODE,) if stat.S_ISDIR(mode) else FILE_MODES
            if stat.S_IMODE(mode) not in wanted:
                found.append(f"{path}: {stat.S_IMODE(mode):#o}, want {wanted[0]:#o}")
    return found
