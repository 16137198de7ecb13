"""The first program of an engine's process: it sets the engine's limits, then becomes the engine.

Run by the worker's interpreter as ``python -I -S launch.py SPEC -- COMMAND…``, inside the sandbox
when there is one, so it imports nothing but the standard library: it must run wherever the
engine runs, before anything of the engine did. SPEC is JSON (``Launch.to_json``):

- ``user``: ``[uid, gid]`` to run the engine as. The worker asks for this when it runs as root
  (``nobody``): the kernel counts processes per real user and exempts root from the process
  limit altogether, so an engine left as root could fork without end.
- ``userns``: after that, a user namespace of the engine's own. The process limit then counts the
  processes of this engine alone, not every engine of the worker together (all are ``nobody``).
  bubblewrap makes one already for a worker that is not root.
- ``limits``: ``{"AS": [soft, hard], …}`` for ``RLIMIT_<name>``, set after the namespace exists:
  a user namespace caps the whole namespace at the process limit its creator had, so a limit set
  before it was made would count every process of the user, not the engine's.
- ``nproc_above``: without a namespace of its own, the process limit counts every process of the
  user (a worker that is not root, with no bubblewrap): it is then set as this many more than the
  user runs now.
- ``no_new_privs``: no setuid program can give the engine more rights (bubblewrap does this
  itself).

Nothing here can fail quietly: a limit that cannot be set stops the engine from starting, with one
line on stderr and exit status 127 (which the worker reports as the engine exiting while starting).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ("Launch", "main")

_CLONE_NEWUSER = 0x10000000
_PR_SET_NO_NEW_PRIVS = 38
_FAILED = 127


@dataclass(frozen=True)
class Launch:
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)  # RLIMIT_<name>: soft, hard
    user: tuple[int, int] | None = None
    userns: bool = False
    nproc_above: int | None = None
    no_new_privs: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "limits": {name: list(pair) for name, pair in self.limits.items()},
                "user": list(self.user) if self.user else None,
                "userns": self.userns,
                "nproc_above": self.nproc_above,
                "no_new_privs": self.no_new_privs,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Launch:
        spec = json.loads(text)
        user = spec.get("user")
        return cls(
            limits={name: (int(soft), int(hard)) for name, (soft, hard) in spec["limits"].items()},
            user=(int(user[0]), int(user[1])) if user else None,
            userns=bool(spec.get("userns")),
            nproc_above=spec.get("nproc_above"),
            no_new_privs=bool(spec.get("no_new_privs")),
        )


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _drop_to(uid: int, gid: int) -> None:
    # Groups first, while the process may still change them; the user last. Once no user id is
    # 0 the kernel clears every capability, so the engine starts with none.
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _own_user_namespace() -> bool:
    """A user namespace for this process, if the kernel allows one; no uid map is written, so
    the engine stays the user it is (shown as the overflow user, 65534: nobody)."""
    status: int = _libc().unshare(_CLONE_NEWUSER)
    return status == 0


def _tasks_of(uid: int) -> int:
    """Threads of every process of ``uid``: what the kernel counts against RLIMIT_NPROC."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            lines = (entry / "status").read_text().splitlines()
        except OSError:
            continue  # gone meanwhile
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


def _limit(name: str, soft: int, hard: int) -> None:
    which = getattr(resource, f"RLIMIT_{name}")
    infinity = resource.RLIM_INFINITY
    resource.setrlimit(which, (infinity if soft < 0 else soft, infinity if hard < 0 else hard))


def apply(launch: Launch) -> None:
    """Everything but the exec, in the order the kernel needs."""
    if launch.user is not None:
        _drop_to(*launch.user)
    if launch.userns and not _own_user_namespace():
        # Without it the limit still holds, for every engine of the worker together.
        print(
            "fap: no user namespace for the engine; its process limit is shared.", file=sys.stderr
        )
    limits = dict(launch.limits)
    if launch.nproc_above is not None:
        more = launch.nproc_above + _tasks_of(os.getuid())
        limits["NPROC"] = (more, more)
    for name, (soft, hard) in limits.items():
        _limit(name, soft, hard)
    if launch.no_new_privs:
        _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: launch.py SPEC -- COMMAND [ARG…]", file=sys.stderr)
        return 2
    command = list(argv[2:])
    try:
        apply(Launch.from_json(argv[0]))
    except (OSError, ValueError, KeyError) as error:
        print(f"fap: the engine's limits cannot be set: {error}", file=sys.stderr)
        return _FAILED
    try:
        os.execvp(command[0], command)  # noqa: S606 - becoming the engine is the point
    except OSError as error:
        print(f"fap: the engine command {command[0]!r} cannot be started: {error}", file=sys.stderr)
    return _FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
