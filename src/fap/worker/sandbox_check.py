"""``fap work --check-sandbox``: what the engine sandbox gives on this machine, tried for real.

Each namespace is tried on its own with bubblewrap, then a do-nothing engine is started exactly as
the worker would start one (its limits, its user, its mounts), so "full" means the worker's own
engines will run in the full sandbox here.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from fap.config import WorkerSettings
from fap.engine.protocol import SOCKET_ENV
from fap.sizes import format_size
from fap.worker.sandbox import Bubblewrap, Sandbox, find_bubblewrap, run_quietly, sandbox_for

__all__ = ("SandboxCheck", "check_sandbox")

_NAMESPACES = ("user", "net", "pid")
_TMP = "/tmp"  # noqa: S108 - the sandbox's own


@dataclass(frozen=True)
class SandboxCheck:
    bwrap: Bubblewrap | None
    namespaces: dict[str, bool]
    sandbox: Sandbox
    missing: str | None  # why the sandbox is not the full one

    @property
    def full(self) -> bool:
        return self.sandbox.isolated and self.missing is None and all(self.namespaces.values())

    def lines(self) -> list[tuple[str, str]]:
        """What to print, as (topic, sentence) pairs."""
        sandbox = self.sandbox
        found = (
            f"{self.bwrap.path} ({self.bwrap.version})"
            if self.bwrap
            else "not found (Debian: apt-get install bubblewrap)"
        )
        spaces = ", ".join(
            f"{kind} {'yes' if ok else 'no'}" for kind, ok in self.namespaces.items()
        )
        rows = [("bubblewrap", found), ("namespaces", spaces or "not tried")]
        if sandbox.isolated:
            rows += [
                ("engine user", _engine_user(sandbox)),
                ("network", "none: a network namespace of its own (its own loopback only)"),
                (
                    "files",
                    "read-only: the system (/usr, /lib*, /bin, the loader's /etc files), "
                    f"Python ({', '.join(sandbox.python)}), the engine command"
                    + "".join(f", {path}" for path in sandbox.mounts)
                    + "; its own /tmp, /dev/shm, /proc and /dev"
                    + "".join(f"; device {path}" for path in sandbox.devices),
                ),
            ]
        else:
            rows += [
                ("engine user", "the worker's own"),
                ("network", "the machine's (no sandbox)"),
                ("files", "whatever the worker's user can read (no sandbox)"),
            ]
        given = sandbox.environment(Path(_TMP) / "engine.sock")
        env = ", ".join(
            name if name in sandbox.env else f"{name}={value}"
            for name, value in given.items()
            if name != SOCKET_ENV
        )
        rows += [
            ("environment", f"{env}, {SOCKET_ENV}; nothing of the worker's"),
            ("limits", _limits(sandbox, root=os.geteuid() == 0)),
        ]
        verdict = "full" if self.full else f"not full: {self.missing or 'a namespace is missing'}"
        if not sandbox.isolated:
            verdict = f"rlimits alone: {self.missing}"
        rows.append(("sandbox", verdict))
        return rows


def _engine_user(sandbox: Sandbox) -> str:
    if sandbox.user is None:
        return f"the worker's own (uid {os.getuid()}), mapped into a user namespace of its own"
    uid = sandbox.user[0]
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = "nobody"
    return f"{name} (uid {uid}), in a user namespace of its own: fap work runs as root"


def _limits(sandbox: Sandbox, *, root: bool) -> str:
    limits = sandbox.limits
    memory = (
        f"address space {format_size(limits.memory)} per process (RLIMIT_AS; also its files, "
        "RLIMIT_FSIZE, and its /tmp)"
        if limits.memory
        else "memory unlimited"
    )
    cpu = (
        f"CPU {limits.cpu_seconds:g} s a job (RLIMIT_CPU, and the worker's watch)"
        if limits.cpu_seconds
        else "CPU unlimited"
    )
    if not limits.processes:
        processes = "processes unlimited"
    elif not sandbox.isolated and root:
        processes = "no process limit (root is exempt from RLIMIT_NPROC)"
    else:
        processes = f"{limits.processes} processes and threads (RLIMIT_NPROC)"
    return (
        f"{memory}; {cpu}; {processes}; results up to {format_size(limits.result_max_bytes)}; "
        f"job timeout {limits.job_timeout:g} s"
    )


async def _namespace(bwrap: Bubblewrap, kind: str) -> bool:
    """Whether bubblewrap can make a namespace of ``kind`` here, on its own."""
    args = [bwrap.path, "--ro-bind", "/", "/", f"--unshare-{kind}"]
    if kind == "pid":
        args += ["--proc", "/proc"]
    status, _ = await run_quietly([*args, "--", shutil.which("true") or "/bin/true"])
    return status == 0


async def check_sandbox(settings: WorkerSettings) -> SandboxCheck:
    bwrap = await find_bubblewrap()
    sandbox, missing = await sandbox_for(settings)
    namespaces: dict[str, bool] = {}
    if bwrap is not None:
        for kind in _NAMESPACES:
            namespaces[kind] = await _namespace(bwrap, kind)
        if sandbox.user is not None:
            # A root worker's engines drop to nobody and make their user namespace themselves:
            # whether they can is what the do-nothing engine found out.
            namespaces["user"] = missing is None
    return SandboxCheck(bwrap=bwrap, namespaces=namespaces, sandbox=sandbox, missing=missing)
