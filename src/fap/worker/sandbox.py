"""The engine's sandbox: bubblewrap where it works, the rlimits always (docs/sandbox.md).

Under bubblewrap an engine gets new namespaces — network (nothing but loopback, which is its own:
its only way out is the unix socket, in a directory bound into the sandbox), PID (it sees its own
processes, and they all die with it), IPC, UTS, and for a worker that is not root a user
namespace — and a file system of its own: the system (/usr, /lib*, /bin, a few files of /etc),
the worker's Python installation and virtual environment and the engine command's own file,
read-only; a private /tmp and /dev/shm; fresh /proc and /dev; the socket directory; and what
``--engine-mount`` and ``--engine-device`` name. Nothing else of the processor's files, and an
environment of its own (``engine_environment``): no token, no key, no $HOME. It runs in a session of
its own with no capabilities and no new privileges, and dies with its worker.

A worker that runs as root runs its engines as ``nobody``: root is exempt from the process limit,
and an engine needs no root. A worker that is not root maps its own user into the sandbox.

Where bubblewrap is missing, or cannot make its namespaces (a container that forbids them), the
engine runs with its rlimits alone — the worker says so once, or refuses to start with
``--require-sandbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import fap
from fap.config import WorkerSettings
from fap.engine.protocol import SOCKET_ENV
from fap.errors import ConfigError
from fap.sizes import format_size
from fap.worker import launch
from fap.worker.launch import Launch
from fap.worker.limits import EngineLimits

__all__ = (
    "Bubblewrap",
    "Sandbox",
    "bwrap_args",
    "engine_environment",
    "find_bubblewrap",
    "parse_engine_env",
    "probe",
    "python_paths",
    "run_quietly",
    "sandbox_for",
)

# The system an engine may read: these directories (or the symlinks merged-/usr systems have in
# their place), and of /etc what the dynamic loader and the C library read. No /etc/passwd, no
# certificates (there is no network to use them on), nothing of /home, /root, /var or /run.
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
)
_PATH = "/usr/local/bin:/usr/bin:/bin"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Never set by --engine-env: the engine has no business with the server, and its socket is the
# worker's to choose.
_RESERVED_ENV = frozenset({"FAP_TOKEN", SOCKET_ENV})
# glibc gives each thread an arena of 64 MiB of address space: a handful of threads would use up
# a memory limit of a few hundred MiB without allocating anything. Two arenas serve any engine.
_ARENAS = "2"
_PROBE_TIMEOUT = 30.0
# Exits 0 in a user namespace of its own (any but the initial one, whose map is the whole range).
_IN_OWN_USERNS = (
    "import sys; sys.exit(open('/proc/self/uid_map').read().split() == ['0', '0', '4294967295'])"
)
_NOBODY = 65534
# Never bound whole, whatever sys.path says: the machine's own, with everyone's files.
_NEVER = frozenset({"/", "/tmp", "/var/tmp", "/home", "/root", "/run", "/var", "/etc", "/dev"})  # noqa: S108
_TMP = "/tmp"  # noqa: S108 - the sandbox's private /tmp (the machine's, with rlimits alone)


@dataclass(frozen=True)
class Bubblewrap:
    path: str
    version: str  # "bubblewrap 0.8.0"
    disable_userns: bool = False  # has --disable-userns (0.8)
    sized_tmpfs: bool = False  # has --size for --tmpfs (0.8)


@dataclass(frozen=True)
class Sandbox:
    """How this worker starts its engines: under ``bwrap``, or (None) with rlimits alone."""

    limits: EngineLimits
    bwrap: Bubblewrap | None = None
    mounts: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # --engine-env
    # uid, gid the engine runs as, when not the worker's own: ``nobody`` for a root worker.
    user: tuple[int, int] | None = None
    # Read-only inside: the worker's Python (with fap, which starts every engine: launch.py).
    python: tuple[str, ...] = ()

    @property
    def isolated(self) -> bool:
        return self.bwrap is not None

    def launch(self) -> Launch:
        """What the launcher sets before it becomes the engine (see ``launch.py``)."""
        limits: dict[str, tuple[int, int]] = {"CORE": (0, 0)}  # no core dump of a file's bytes
        if self.limits.memory:
            limits["AS"] = (self.limits.memory, self.limits.memory)
        if self.limits.file_size:
            limits["FSIZE"] = (self.limits.file_size, self.limits.file_size)
        processes = self.limits.processes
        root = os.geteuid() == 0
        if self.isolated:
            if processes:
                limits["NPROC"] = (processes, processes)
            return Launch(limits=limits, user=self.user, userns=self.user is not None)
        # Rlimits alone: the process limit counts every process of the user, and none of root's.
        return Launch(
            limits=limits,
            nproc_above=processes if processes and not root else None,
            no_new_privs=True,
        )

    def argv(self, command: Sequence[str], socket_dir: Path) -> list[str]:
        """The command line that starts ``command`` as an engine, its socket in ``socket_dir``."""
        engine = _resolved(command)
        inner = [
            sys.executable,
            "-I",
            "-S",
            launch.__file__,
            self.launch().to_json(),
            "--",
            *engine,
        ]
        if self.bwrap is None:
            return inner
        # The engine command's own files: its program, and what its arguments name by absolute
        # path (a script, a model), with symlinks followed.
        named = [Path(arg) for arg in engine if arg.startswith("/") and Path(arg).exists()]
        own = [str(path) for path in named] + [str(path.resolve()) for path in named]
        return [
            *bwrap_args(
                self.bwrap,
                socket_dir=str(socket_dir),
                read_only=_outermost([*self.python, *own]),
                mounts=self.mounts,
                devices=self.devices,
                as_root=os.geteuid() == 0,
                tmp_size=self.limits.memory,
            ),
            "--",
            *inner,
        ]

    def environment(self, socket_path: Path) -> dict[str, str]:
        return engine_environment(socket_path, self.env, memory_limited=bool(self.limits.memory))

    def prepare(self, socket_dir: Path) -> None:
        """Give the socket directory to the engine's user, who must create the socket in it."""
        if self.user is not None and self.isolated:
            os.chown(socket_dir, *self.user)

    def describe(self) -> str:
        """One line for the worker's log: what the engines get."""
        limits = self.limits
        parts = [
            f"memory {format_size(limits.memory) if limits.memory else 'unlimited'}",
            f"CPU {f'{limits.cpu_seconds:g} s' if limits.cpu_seconds else 'unlimited'} a job",
            f"{limits.processes or 'unlimited'} processes",
            f"results up to {format_size(limits.result_max_bytes)}",
            f"job timeout {limits.job_timeout:g} s",
        ]
        if self.bwrap is None:
            return "rlimits alone: " + ", ".join(parts)
        who = "as nobody, " if self.user else ""
        return (
            f"a {self.bwrap.version} sandbox ({who}no network, read-only system, private /tmp); "
            + ", ".join(parts)
        )


def bwrap_args(
    bwrap: Bubblewrap,
    *,
    socket_dir: str,
    read_only: Sequence[str],
    mounts: Sequence[str] = (),
    devices: Sequence[str] = (),
    as_root: bool = False,
    tmp_size: int = 0,
) -> list[str]:
    """bubblewrap's options for one engine (the command follows them, after ``--``)."""
    args = [
        bwrap.path,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    if as_root:
        # For the launcher alone, to become nobody: the kernel takes both away as it does.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user"]
        if bwrap.disable_userns:
            args += ["--disable-userns"]
    # Fresh /proc (of the new PID namespace) and /dev (null, zero, random, tty…); a private /tmp
    # and /dev/shm, no larger than the memory limit (their files are memory).
    args += ["--proc", "/proc", "--dev", "/dev"]
    for tmp in ("/tmp", "/dev/shm"):  # noqa: S108 - inside the sandbox: fresh, its own
        args += ["--perms", "1777"]
        if bwrap.sized_tmpfs and tmp_size:
            args += ["--size", str(tmp_size)]
        args += ["--tmpfs", tmp]
    for path in _SYSTEM:
        system = Path(path)
        if system.is_symlink():
            args += ["--symlink", str(system.readlink()), path]
        elif system.is_dir():
            args += ["--ro-bind", path, path]
    binds = [*read_only, socket_dir, *mounts, *devices]
    # The directories above what is bound, made first and open to all: bubblewrap would make them
    # as it binds, but private to root, which locks out an engine that runs as nobody.
    for path in _parents([*_ETC, *binds]):
        args += ["--perms", "0755", "--dir", path]
    for path in _ETC:
        args += ["--ro-bind-try", path, path]
    for path in read_only:
        args += ["--ro-bind", path, path]
    args += ["--bind", socket_dir, socket_dir]
    for path in mounts:
        args += ["--ro-bind", path, path]
    for path in devices:
        args += ["--dev-bind", path, path]
    args += ["--chdir", "/tmp"]  # noqa: S108 - the sandbox's own
    return args


def _parents(binds: Sequence[str]) -> list[str]:
    """The directories above ``binds`` that the sandbox does not have otherwise, outermost first:
    not the root, the system's directories, the fresh /tmp, /dev and /proc, nor anything a bind
    makes or holds."""
    fresh = {"/", "/tmp", "/dev", "/proc"}  # noqa: S108 - the sandbox's own, made already
    made = [*_SYSTEM, *binds]
    wanted: set[str] = set()
    for bind in binds:
        for parent in Path(bind).parents:
            name = str(parent)
            if name not in fresh and not any(_within(name, top) for top in made):
                wanted.add(name)
    return sorted(wanted, key=lambda name: (name.count("/"), name))


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def engine_environment(
    socket_path: Path, extra: Mapping[str, str], *, memory_limited: bool = False
) -> dict[str, str]:
    """The whole environment of a sandboxed engine: none of the worker's, only what a program
    needs, then ``--engine-env``; its socket last, which nothing overrides."""
    # HOME and TMPDIR: the sandbox's private /tmp, for programs that want a home.
    env = {"PATH": _PATH, "HOME": _TMP, "TMPDIR": _TMP, "LANG": "C.UTF-8"}
    if memory_limited:
        env["MALLOC_ARENA_MAX"] = _ARENAS
    env.update(extra)
    env[SOCKET_ENV] = str(socket_path)
    return env


def parse_engine_env(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` items (``--engine-env``) as a mapping; ConfigError names a bad one."""
    env: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not _ENV_NAME.fullmatch(key):
            raise ConfigError(
                f"--engine-env takes KEY=VALUE, with KEY a variable name; {item!r} is not."
            )
        if key in _RESERVED_ENV:
            raise ConfigError(f"--engine-env cannot set {key}: the worker never gives it.")
        env[key] = value
    return env


def _existing(paths: Sequence[str], option: str) -> tuple[str, ...]:
    found = []
    for path in paths:
        absolute = Path(path).expanduser().absolute()
        if not absolute.exists():
            raise ConfigError(f"{option} {path}: there is no such file or directory.")
        found.append(str(absolute))
    return tuple(found)


def _resolved(command: Sequence[str]) -> list[str]:
    """The engine command with its program found on the worker's PATH: the sandbox's PATH is not
    the worker's, and the program's file is bound into the sandbox at this very path."""
    program = command[0]
    if os.sep not in program:
        program = shutil.which(program) or program
    return [program, *command[1:]]


def python_paths() -> tuple[str, ...]:
    """Where the worker's Python lives, as the engine needs it: the installation, the virtual
    environment, its site-packages, and fap's own source (an editable install) — with symlinks
    followed, since a venv's ``python`` points into the installation. Not the directories of
    PYTHONPATH, which are the processor's own: an engine's code comes in with --engine-mount."""
    pythonpath = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    # The processor's own code, and the directory it was started in: a home directory, perhaps.
    mine = {Path(p).resolve() for p in pythonpath if p} | {Path.cwd()}
    candidates = [
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(sys.base_exec_prefix),
        Path(sys.executable).resolve().parent,
        Path(sysconfig.get_path("purelib")),
        Path(sysconfig.get_path("platlib")),
        Path(fap.__file__).absolute().parent.parent,
        # Not sys.path[0]: the directory of the script that started the worker, or the one it was
        # started in (``python -m``).
        *(Path(entry) for entry in sys.path[1:] if entry and Path(entry).is_absolute()),
    ]
    paths: list[str] = []
    for candidate in candidates:
        for path in (candidate.absolute(), candidate.resolve()):
            if path.exists() and path not in mine:
                paths.append(str(path))
    return tuple(_outermost(paths))


def _outermost(paths: Sequence[str]) -> list[str]:
    """``paths`` without those inside another one of them, or inside the system's directories."""
    covered = [*_SYSTEM]
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if path in _NEVER or any(_within(path, top) for top in covered):
            continue
        covered.append(path)
        kept.append(path)
    return kept


def _nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return _NOBODY, _NOBODY
    return entry.pw_uid, entry.pw_gid


async def run_quietly(argv: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Exit status and output of a short command; 127 when it cannot run."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env) if env is not None else {"PATH": _PATH},
        )
    except OSError as error:
        return 127, str(error)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), _PROBE_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return 124, f"no answer within {_PROBE_TIMEOUT:g} s"
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace").strip()


async def find_bubblewrap() -> Bubblewrap | None:
    """bubblewrap on PATH, its version and the options this worker would like from it."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    status, version = await run_quietly([path, "--version"])
    if status != 0:
        return None
    _, usage = await run_quietly([path, "--help"])
    return Bubblewrap(
        path=path,
        version=version.splitlines()[0] if version else "bubblewrap",
        disable_userns="--disable-userns" in usage,
        sized_tmpfs="--size" in usage,
    )


async def probe(sandbox: Sandbox) -> tuple[int, str]:
    """Run a do-nothing engine in ``sandbox``: 0 when it ran in a user namespace of its own, 1
    when it ran in the initial one (the process limit is then shared), else it did not run."""
    with tempfile.TemporaryDirectory(prefix="fap-probe-") as socket_dir:
        sandbox.prepare(Path(socket_dir))
        check = [sys.executable, "-I", "-S", "-c", _IN_OWN_USERNS]
        argv = sandbox.argv(check, Path(socket_dir))
        return await run_quietly(argv, sandbox.environment(Path(socket_dir) / "probe.sock"))


async def sandbox_for(settings: WorkerSettings) -> tuple[Sandbox, str | None]:
    """The sandbox this machine gives, and why it is not the full one (None when it is)."""
    limits = EngineLimits.of(settings)
    plain = Sandbox(
        limits=limits,
        mounts=_existing(settings.engine_mounts, "--engine-mount"),
        devices=_existing(settings.engine_devices, "--engine-device"),
        env=parse_engine_env(settings.engine_env),
        python=python_paths(),
    )
    bwrap = await find_bubblewrap()
    if bwrap is None:
        return plain, "bubblewrap (bwrap) is not installed"
    sandboxed = replace(plain, bwrap=bwrap, user=_nobody() if os.geteuid() == 0 else None)
    status, output = await probe(sandboxed)
    if status == 0:
        return sandboxed, None
    if status == 1:
        # Sandboxed all the same; only the process limit counts every engine of the worker.
        return sandboxed, "no user namespace for the engines: their process limit is shared"
    last = output.strip().splitlines()[-1] if output.strip() else f"exit status {status}"
    return plain, f"bubblewrap cannot make the engine's sandbox here ({last[:200]})"
