"""fap installed from its wheel, as a user without the repository installs it: into a fresh
virtual environment, with ``uv tool install`` and with ``pipx install``, and run from there."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from fap import __version__
from tests.support.processes import FapProcess, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "fap"
# A user's shell has the system's tools on PATH and nothing of this checkout.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def _uv() -> str:
    """uv as the Makefile finds it: on PATH, or where its installer puts it."""
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).is_file():
        pytest.fail("uv is missing: `make install` installs it", pytrace=False)
    return found


def _run(
    argv: list[str | Path], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(arg) for arg in argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def _uv_env(**extra: str) -> dict[str, str]:
    # An activated virtual environment (the developer's) would otherwise be what uv works on.
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    return {**env, **extra}


# Every dependency is in uv's cache (`make install` put it there), so what can run offline does.
OFFLINE = {"UV_OFFLINE": "1"}


@dataclass(frozen=True)
class Built:
    wheel: Path
    pylock: Path  # the lock's runtime packages, exact versions and files
    constraints: Path  # the same versions, for resolvers that take requirements


@dataclass(frozen=True)
class Installed:
    """One installation: its ``fap`` command and the Python of the environment it runs in."""

    fap: Path
    python: Path
    prefix: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    uv = _uv()
    _run([uv, "build", "--wheel", "--out-dir", out], env=_uv_env(**OFFLINE), cwd=REPO)
    [wheel] = out.glob("fap-*.whl")
    export = [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet"]
    pylock, constraints = out / "pylock.toml", out / "constraints.txt"
    _run([*export, "--format", "pylock.toml", "-o", pylock], env=_uv_env(**OFFLINE), cwd=REPO)
    _run([*export, "--no-hashes", "-o", constraints], env=_uv_env(**OFFLINE), cwd=REPO)
    return Built(wheel=wheel, pylock=pylock, constraints=constraints)


@pytest.fixture(scope="module")
def in_venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """``uv venv`` + ``uv pip install WHEEL``, on the lock's versions."""
    venv = tmp_path_factory.mktemp("install") / "venv"
    uv, python = _uv(), venv / "bin" / "python"
    env = _uv_env(**OFFLINE)
    _run([uv, "venv", "--quiet", "--python", sys.executable, venv], env=env)
    install = [uv, "pip", "install", "--quiet", "--python", python]
    # The lock's packages first, from their exact files: no index is asked, so this works
    # offline. The wheel then resolves its own requirements against them, offline too: a
    # requirement the lock does not satisfy fails here.
    _run([*install, "-r", built.pylock], env=env)
    _run([*install, built.wheel], env=env)
    _run([uv, "pip", "check", "--quiet", "--python", python], env=env)
    return Installed(fap=venv / "bin" / "fap", python=python, prefix=venv)


@pytest.fixture(scope="module")
def as_uv_tool(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """``uv tool install WHEEL``, into tool and bin directories of the test's own."""
    root = tmp_path_factory.mktemp("uv-tool")
    tools, bin_dir = root / "tools", root / "bin"
    # Not offline: a tool install resolves against the index, whose pages `uv sync` never
    # fetched. The constraints hold it to the lock's versions, whose files uv has cached.
    env = _uv_env(UV_TOOL_DIR=str(tools), UV_TOOL_BIN_DIR=str(bin_dir))
    install = [_uv(), "tool", "install", "--quiet", "--python", sys.executable]
    _run([*install, "--constraints", built.constraints, built.wheel], env=env)
    return Installed(fap=bin_dir / "fap", python=tools / "fap" / "bin" / "python", prefix=tools)


@pytest.fixture(scope="module")
def with_pipx(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """``pipx install WHEEL``, into a pipx home and bin directory of the test's own."""
    # pipx comes with the tests' own environment (the dev group), beside this interpreter.
    beside = Path(sys.executable).parent / "pipx"
    pipx = str(beside) if beside.exists() else shutil.which("pipx")
    if pipx is None:
        pytest.fail("pipx is missing: it is in the dev group; run make install", pytrace=False)
    root = tmp_path_factory.mktemp("pipx")
    home, bin_dir = root / "home", root / "bin"
    env = _uv_env(PIPX_HOME=str(home), PIPX_BIN_DIR=str(bin_dir), PIPX_MAN_DIR=str(root / "man"))
    argv = [pipx, "install", "--python", sys.executable, "--pip-args", f"-c {built.constraints}"]
    _run([*argv, built.wheel], env=env)
    venv = home / "venvs" / "fap"
    return Installed(fap=bin_dir / "fap", python=venv / "bin" / "python", prefix=venv)


@pytest.fixture(params=["venv", "uv tool", "pipx"])
def installed(request: pytest.FixtureRequest) -> Installed:
    fixture = {"venv": "in_venv", "uv tool": "as_uv_tool", "pipx": "with_pipx"}[request.param]
    found: Installed = request.getfixturevalue(fixture)
    return found


def _clean_env(installed: Installed, home: Path) -> dict[str, str]:
    """A user's session: a home of its own, the installation's commands on PATH, no keyring."""
    return {
        "PATH": f"{installed.fap.parent}{os.pathsep}{SYSTEM_PATH}",
        "HOME": str(home),
        "FAP_HOME": str(home / "fap"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "LANG": "C.UTF-8",
    }


def test_wheel_carries_every_file_of_the_package_and_nothing_else(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    source = {
        f"fap/{path.relative_to(PACKAGE).as_posix()}"
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    # What the server needs at run time beside the modules: its migrations and their template.
    assert "fap/server/store/migrations/env.py" in source
    assert "fap/server/store/migrations/script.py.mako" in source
    assert any(name.startswith("fap/server/store/migrations/versions/") for name in source)
    assert "fap/py.typed" in source
    assert sorted(source - names) == []
    dist_info = f"fap-{__version__}.dist-info/"
    assert sorted(name for name in names if not name.startswith(("fap/", dist_info))) == []
    entry_points = zipfile.ZipFile(built.wheel).read(f"{dist_info}entry_points.txt").decode()
    assert "fap = fap.cli.app:main" in entry_points


def test_installed_fap_answers_help_and_version(installed: Installed, tmp_path: Path) -> None:
    env = _clean_env(installed, tmp_path)

    help_text = _run([installed.fap, "--help"], env=env).stdout
    up_help = _run([installed.fap, "up", "--help"], env=env).stdout
    version = _run([installed.fap, "--version"], env=env).stdout

    assert help_text.startswith("Usage: fap ")
    commands = {
        line.split()[0] for line in help_text.partition("Commands:")[2].splitlines() if line
    }
    assert {"up", "upload", "watch", "serve", "work", "engine", "login", "results"} <= commands
    assert up_help.startswith("Usage: fap up ")
    assert version.startswith("fap ")
    assert __version__ in version.split()


def test_installed_fap_runs_from_its_own_environment_alone(
    installed: Installed, tmp_path: Path
) -> None:
    env = _clean_env(installed, tmp_path)
    where = "import fap, fap.cli.app, fap.server, fap.worker; print(fap.__file__)"

    imported = Path(_run([installed.python, "-c", where], env=env).stdout.strip())
    dev_only = subprocess.run(
        [installed.python, "-c", "import pytest"], env=env, capture_output=True, check=False
    )

    assert imported.is_relative_to(installed.prefix), imported
    assert not imported.is_relative_to(REPO)
    assert dev_only.returncode != 0, "a development package is importable: not a clean install"


def test_fap_up_from_the_wheel_analyses_a_dropped_file(in_venv: Installed, tmp_path: Path) -> None:
    """The whole pipeline from the installed package: the server migrates its database from the
    wheel's migrations, the processor starts the wheel's engine, the watcher writes the result."""
    inbox, results, data = tmp_path / "inbox", tmp_path / "results", tmp_path / "data"
    port = free_port()
    env = _clean_env(in_venv, tmp_path / "user")
    up = FapProcess(
        # `env -i`: the child gets this session's environment and nothing of the test run's.
        argv=[
            "env",
            "-i",
            *(f"{key}={value}" for key, value in env.items()),
            str(in_venv.fap),
            "up",
            str(inbox),
            "--results",
            str(results),
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        log_path=tmp_path / "up.log",
    ).start()
    try:
        wait_until(inbox.is_dir, 60, f"fap up to create the inbox\n{up.log()}")
        dropped = inbox / "reports" / "q4.txt"
        dropped.parent.mkdir()
        dropped.write_bytes(b"installed from a wheel\n" * 100)
        result_path = results / "reports" / "q4.txt.result.json"
        wait_until(result_path.exists, 120, f"the result to appear\n{up.log()}", interval=0.2)
        result = json.loads(result_path.read_text())
        assert result["sha256"] == hashlib.sha256(dropped.read_bytes()).hexdigest()

        os.kill(up.pid, signal.SIGINT)
        assert up.process is not None
        assert up.process.wait(timeout=60) == 0, up.log()
        assert "Traceback" not in up.log()
    finally:
        up.stop()
