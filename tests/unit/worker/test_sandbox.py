"""The engine sandbox's command line, environment and launch, read as the spec (docs/sandbox.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fap.config import WorkerSettings
from fap.engine.protocol import SOCKET_ENV
from fap.errors import ConfigError
from fap.worker import EngineProcess, default_engine_command
from fap.worker.launch import Launch
from fap.worker.limits import EngineLimits
from fap.worker.sandbox import (
    Bubblewrap,
    Sandbox,
    bwrap_args,
    engine_environment,
    find_bubblewrap,
    parse_engine_env,
    python_paths,
    sandbox_for,
)

BWRAP = Bubblewrap(
    path="/usr/bin/bwrap", version="bubblewrap 0.8.0", disable_userns=True, sized_tmpfs=True
)
GiB = 1024**3
LIMITS = EngineLimits(memory=2 * GiB, cpu_seconds=30, processes=128, result_max_bytes=1 << 20)


def _args(**overrides: object) -> list[str]:
    options: dict[str, object] = {
        "socket_dir": "/tmp/fap-abc",
        "read_only": ["/opt/python", "/srv/venv"],
        "mounts": ["/srv/models"],
        "devices": ["/dev/nvidia0"],
        "as_root": False,
        "tmp_size": 2 * GiB,
        **overrides,
    }
    return bwrap_args(BWRAP, **options)  # type: ignore[arg-type]


def _pairs(args: list[str], flag: str) -> list[str]:
    """The values that follow each ``flag`` (the first, for two-value flags)."""
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def test_the_engine_gets_no_network_its_own_pids_a_session_and_no_capabilities() -> None:
    args = _args()
    assert args[0] == "/usr/bin/bwrap"
    for flag in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent"):
        assert flag in args
    assert "--new-session" in args
    assert _pairs(args, "--cap-drop") == ["ALL"]
    assert "--cap-add" not in args


def test_a_worker_that_is_not_root_maps_itself_into_a_user_namespace_that_makes_no_more() -> None:
    args = _args(as_root=False)
    assert "--unshare-user" in args
    assert "--disable-userns" in args


def test_a_root_worker_keeps_only_what_its_launcher_needs_to_become_nobody() -> None:
    args = _args(as_root=True)
    assert "--unshare-user" not in args
    assert _pairs(args, "--cap-add") == ["CAP_SETUID", "CAP_SETGID"]


def test_the_system_and_python_are_read_only_mounts_and_devices_are_as_asked() -> None:
    args = _args()
    read_only = _pairs(args, "--ro-bind")
    assert "/usr" in read_only
    assert {"/opt/python", "/srv/venv", "/srv/models"} <= set(read_only)
    assert _pairs(args, "--dev-bind") == ["/dev/nvidia0"]
    # The one read-write bind of a directory: the socket's.
    assert _pairs(args, "--bind") == ["/tmp/fap-abc"]
    # Nothing of the processor's own: no home, no /root, no /var, not the machine's /tmp.
    for private in ("/home", "/root", "/var", "/tmp", "/run", "/"):
        assert private not in read_only


def test_tmp_and_shm_are_private_open_and_no_larger_than_the_memory_limit() -> None:
    args = _args()
    for tmp in ("/tmp", "/dev/shm"):
        at = args.index(tmp, args.index("--tmpfs") - 1)
        assert args[at - 1] == "--tmpfs"
        assert args[at - 5 : at - 1] == ["--perms", "1777", "--size", str(2 * GiB)]
    # The private /tmp comes before anything bound below it, which it would hide.
    assert args.index("--tmpfs") < args.index("--bind")
    assert args[args.index("--chdir") + 1] == "/tmp"


def test_directories_above_the_binds_are_made_open_before_them() -> None:
    args = _args(read_only=["/root/.pyenv/versions/3.11"], mounts=["/tmp/pytest/x/code"])
    made = _pairs(args, "--dir")
    root = [name for name in made if name.startswith("/root")]
    assert root == ["/root", "/root/.pyenv", "/root/.pyenv/versions"]  # outermost first
    assert {"/tmp/pytest", "/tmp/pytest/x"} <= set(made)
    assert "/tmp" not in made and "/" not in made  # there already
    for name in made:
        at = args.index(name, args.index("--dir"))
        assert args[at - 3 : at - 1] == ["--perms", "0755"]
        assert at < args.index("--ro-bind", args.index("--symlink") if "--symlink" in args else 0)


def test_merged_usr_links_are_links_in_the_sandbox_too() -> None:
    args = _args()
    for path in ("/bin", "/lib"):
        if Path(path).is_symlink():
            at = args.index(path)
            assert args[at - 2] == "--symlink"
            assert args[at - 1] == str(Path(path).readlink())


def test_the_environment_is_the_sandboxes_own_with_the_engine_env_and_the_socket_last() -> None:
    socket = Path("/tmp/fap-abc/engine.sock")
    env = engine_environment(
        socket, {"PYTHONPATH": "/srv/code", "HOME": "/srv/home"}, memory_limited=True
    )
    assert env["PYTHONPATH"] == "/srv/code"
    assert env["HOME"] == "/srv/home"  # --engine-env may set what it likes…
    assert env[SOCKET_ENV] == str(socket)
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    # …and nothing comes from the worker's environment.
    assert set(env) == {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "MALLOC_ARENA_MAX",
        "PYTHONPATH",
        SOCKET_ENV,
    }


def test_engine_env_takes_key_value_and_never_the_token_or_the_socket() -> None:
    assert parse_engine_env(["A=1", "PYTHONPATH=/x:/y", "EMPTY="]) == {
        "A": "1",
        "PYTHONPATH": "/x:/y",
        "EMPTY": "",
    }
    for bad in ("NOEQUALS", "=1", "1A=2", "A B=1"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_engine_env([bad])
    for reserved in ("FAP_TOKEN", SOCKET_ENV):
        with pytest.raises(ConfigError, match=f"cannot set {reserved}"):
            parse_engine_env([f"{reserved}=x"])


def test_the_launch_of_a_root_workers_engine_drops_to_nobody_in_a_namespace_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    launch = Sandbox(LIMITS, bwrap=BWRAP, user=(65534, 65534)).launch()
    assert launch.user == (65534, 65534)
    assert launch.userns
    assert launch.limits == {
        "CORE": (0, 0),
        "AS": (2 * GiB, 2 * GiB),
        "FSIZE": (2 * GiB, 2 * GiB),
        "NPROC": (128, 128),
    }


def test_with_rlimits_alone_the_process_limit_counts_from_what_the_user_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    launch = Sandbox(LIMITS).launch()
    assert launch.nproc_above == 128
    assert "NPROC" not in launch.limits
    assert launch.no_new_privs
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert Sandbox(LIMITS).launch().nproc_above is None  # root: the kernel would not count


def test_a_launch_reads_back_as_written() -> None:
    launch = Launch(limits={"AS": (1, 2)}, user=(5, 6), userns=True, nproc_above=7)
    assert Launch.from_json(launch.to_json()) == launch


def test_the_sandboxed_command_runs_the_launcher_then_the_engine_by_its_full_path(
    tmp_path: Path,
) -> None:
    script = tmp_path / "engine.py"
    script.write_text("")
    sandbox = Sandbox(LIMITS, bwrap=BWRAP, python=("/opt/python",))
    argv = sandbox.argv(["python3", str(script), "--flag"], tmp_path)
    inner = argv[argv.index("--") + 1 :]
    assert inner[:4] == [sys.executable, "-I", "-S", inner[3]]
    assert inner[3].endswith("fap/worker/launch.py")
    engine = inner[inner.index("--") + 1 :]
    assert Path(engine[0]).is_absolute() and Path(engine[0]).name.startswith("python3")
    assert engine[1:] == [str(script), "--flag"]
    # The script the command names is visible inside, read-only.
    assert str(script) in _pairs(argv, "--ro-bind")


def test_pythonpath_and_the_directory_the_worker_started_in_are_not_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "processors-own-code"
    own.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(own))
    monkeypatch.syspath_prepend(str(own))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    paths = python_paths()
    assert str(own) not in paths and str(tmp_path) not in paths
    # The interpreter's environment is there, in a directory of its own or one above it.
    assert any(Path(sys.prefix).is_relative_to(path) for path in paths)
    assert any(Path(sys.base_prefix).resolve().is_relative_to(path) for path in paths)


async def test_a_mount_that_does_not_exist_is_one_sentence(tmp_path: Path) -> None:
    settings = WorkerSettings(engine_mounts=(str(tmp_path / "missing"),))
    with pytest.raises(ConfigError, match=r"--engine-mount .*missing: there is no such file"):
        await sandbox_for(settings)


def _proc(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if item)


async def test_with_rlimits_alone_the_engine_still_gets_its_limits_and_an_environment_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAP_TOKEN", "fap_processor_not-for-the-engine")
    monkeypatch.setenv("SOME_SECRET_KEY", "not-for-the-engine-either")
    sandbox = Sandbox(LIMITS, python=python_paths())  # no bubblewrap
    async with EngineProcess(default_engine_command(), sandbox=sandbox) as engine:
        tracked = engine.tracked(engine.generation)
        assert tracked is not None and tracked.root == tracked.engine  # the engine, no wrapper
        limits = _proc(tracked.engine, "limits")
        assert f"Max address space         {2 * GiB}" in limits
        assert f"Max file size             {2 * GiB}" in limits
        assert "Max core file size        0" in limits
        env = _environ(tracked.engine)
        assert "FAP_TOKEN" not in env and "SOME_SECRET_KEY" not in env
        assert env[SOCKET_ENV] == str(engine.socket_path)
        assert env["HOME"] == "/tmp"
        assert "NoNewPrivs:\t1" in _proc(tracked.engine, "status")


async def test_under_bubblewrap_the_engine_has_namespaces_of_its_own() -> None:
    bwrap = await find_bubblewrap()
    if bwrap is None:
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is not installed: run scripts/install-system-deps.sh")
        pytest.skip("bubblewrap is not installed")
    sandbox, missing = await sandbox_for(WorkerSettings(engine_memory=2 * GiB))
    assert sandbox.isolated, missing
    async with EngineProcess(default_engine_command(), sandbox=sandbox) as engine:
        tracked = engine.tracked(engine.generation)
        assert tracked is not None and tracked.root != tracked.engine  # bubblewrap's init
        status = _proc(tracked.engine, "status")
        assert "CapEff:\t0000000000000000" in status
        assert "NoNewPrivs:\t1" in status
        # Its PID namespace: inside, it is not the process the worker sees.
        assert status.split("NSpid:")[1].split()[0] == str(tracked.engine)
        assert len(status.split("NSpid:")[1].split("\n")[0].split()) == 2
        assert "Max processes             256" in _proc(tracked.engine, "limits")
        uid = int(status.split("Uid:")[1].split()[0])
        assert uid == (65534 if os.geteuid() == 0 else os.geteuid())
        info = await engine.client.info()
        assert info.engine == "size@1"
