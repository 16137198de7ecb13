"""The files a watch service is: a systemd user unit and a launchd agent, as systemd and launchd
read them; and the token file a service on a machine without a keyring signs in with."""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.client.conftest import MemoryKeyring

from fap.client import load_settings, resolve_credentials, resolve_token
from fap.client.service import (
    WatchService,
    escape_path,
    fap_command,
    launchd_label,
    launchd_plist,
    plan_service,
    plist_text,
    read_plist,
    read_unit,
    systemd_unit,
    unit_name,
)
from fap.client.session import read_token_file
from fap.config import ClientSettings
from fap.errors import InputError

TOKEN = "fap_user_" + "s3cr3t" * 6
# A folder name with everything a unit file could misread: whitespace, both quotes, a
# backslash, a specifier (%h is the home directory), a variable, a leading dash, non-ASCII.
AWKWARD = 'drop box %h $HOME "q" it\'s \\ -x café'


def require(tool: str) -> str:
    """A system tool the test needs: it fails in CI without it, skips elsewhere."""
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed: run scripts/install-system-deps.sh")
        pytest.skip(f"{tool} is not installed")
    return found


def systemd_words(value: str, *, exec_line: bool) -> list[str]:
    """The words systemd reads in an ExecStart= (``exec_line``) or Environment= value, for the
    subset of the syntax a careful writer uses: specifiers first (``%%`` is a ``%``, any other
    ``%`` a specifier), then double quotes with ``\\\\`` and ``\\"``, then — on a command line —
    ``$$`` for a ``$`` and any other ``$`` a variable. What systemd would expand fails here."""
    assert "%" not in value.replace("%%", ""), f"a specifier systemd would expand: {value!r}"
    words = shlex.split(value.replace("%%", "%"))
    if not exec_line:
        return words
    for word in words:
        assert "$" not in word.replace("$$", ""), f"a variable systemd would expand: {word!r}"
    return [word.replace("$$", "$") for word in words]


def unit_command(text: str) -> tuple[list[str], dict[str, str]]:
    """The command line a unit runs and the environment it runs in, read as systemd reads them."""
    [exec_start] = re.findall(r"^ExecStart=(.*)$", text, re.MULTILINE)
    environment = {}
    for value in re.findall(r"^Environment=(.*)$", text, re.MULTILINE):
        for assignment in systemd_words(value, exec_line=False):
            name, _, setting = assignment.partition("=")
            environment[name] = setting
    return systemd_words(exec_start, exec_line=True), environment


def _service(tmp_path: Path, name: str = "inbox", **environment: str) -> WatchService:
    return WatchService(
        directory=tmp_path / name,
        results=tmp_path / "results",
        command=fap_command(),
        server="http://127.0.0.1:8700",
        engine="size@1",
        environment=environment,
    )


# --- the systemd unit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/home/ana/inbox",
        "/",
        "/home//ana/./inbox/",
        "/srv/.hidden/x.y",
        "/.dotted",
        "/a-b/c_d/e:f",
        f"/tmp/{AWKWARD}",
        "/tmp/caf\udce9",  # a name that is not UTF-8: byte 0xe9 on disk
        "/tmp/*?[x]",
    ],
)
def test_the_instance_name_is_systemd_escape_path(path: str) -> None:
    escape = require("systemd-escape")
    done = subprocess.run([escape, "--path", path], capture_output=True, check=True)
    assert escape_path(path) == os.fsdecode(done.stdout.strip())


def test_escaping_turns_slashes_into_dashes_and_escapes_the_rest() -> None:
    assert escape_path("/home/ana/in box") == "home-ana-in\\x20box"
    assert escape_path("/srv/my-data/.cache") == "srv-my\\x2ddata-.cache"
    assert escape_path("/.x") == "\\x2ex"
    assert escape_path("/") == "-"
    assert unit_name(Path("/home/ana/inbox")) == "fap-watch@home-ana-inbox.service"


def test_a_path_too_long_for_a_unit_name_is_refused_in_one_sentence() -> None:
    with pytest.raises(InputError, match="too long to name a systemd unit"):
        unit_name(Path("/" + "x" * 250))


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require("systemd-analyze")
    service = _service(tmp_path, AWKWARD, FAP_HOME=str(tmp_path / "my home"))
    units = tmp_path / "units"
    units.mkdir()
    unit = units / unit_name(service.directory)
    unit.write_text(systemd_unit(service))
    # No user manager runs here: --user verify needs only a runtime directory to be there.
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    done = subprocess.run(
        [analyze, "--user", "verify", str(unit)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    # verify also checks that ExecStart's program exists: the command is this checkout's fap.
    assert Path(service.command[0]).is_file()
    # Warnings (an unknown key, a value it ignores) leave the exit code 0: none may be printed.
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), done.stdout + done.stderr


def test_the_unit_runs_fap_watch_with_the_folder_results_server_and_engine(
    tmp_path: Path,
) -> None:
    service = _service(tmp_path, AWKWARD, FAP_HOME=str(tmp_path / "home %i $X"))
    text = systemd_unit(service)

    argv, environment = unit_command(text)

    assert argv == [
        *fap_command(),
        "watch",
        str(tmp_path / AWKWARD),
        "--results",
        str(tmp_path / "results"),
        "--server",
        "http://127.0.0.1:8700",
        "--engine",
        "size@1",
    ]
    assert environment == {"FAP_HOME": str(tmp_path / "home %i $X")}
    for line in ("Restart=on-failure", "StandardOutput=journal", "StandardError=journal"):
        assert line in text.splitlines()
    assert "WantedBy=default.target" in text.splitlines()


def test_a_unit_reads_back_as_the_service_it_runs(tmp_path: Path) -> None:
    service = _service(tmp_path, AWKWARD, FAP_HOME="/x", FAP_TOKEN_FILE=f"/t/{AWKWARD}")
    assert read_unit(systemd_unit(service)) == service
    bare = WatchService(tmp_path / "in", tmp_path / "out", ("/usr/bin/fap",))
    assert read_unit(systemd_unit(bare)) == bare


def test_a_control_character_in_a_path_is_refused_in_one_sentence(tmp_path: Path) -> None:
    service = _service(tmp_path, "two\nlines")
    with pytest.raises(InputError, match="control character"):
        systemd_unit(service)


# --- the launchd agent -------------------------------------------------------------------------


def test_the_plist_parses_and_carries_what_launchd_needs(tmp_path: Path) -> None:
    logs = tmp_path / "Library" / "Logs" / "fap"
    service = _service(tmp_path, FAP_HOME="/h", FAP_TOKEN_FILE="/t/api.token")
    label = launchd_label(service.directory)

    plist = plistlib.loads(plist_text(launchd_plist(service, logs / f"{label}.log")).encode())

    assert plist["Label"] == label and label.startswith("org.fap.watch.inbox-")
    assert plist["ProgramArguments"] == service.argv
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardOutPath"] == plist["StandardErrorPath"] == str(logs / f"{label}.log")
    assert plist["EnvironmentVariables"] == {"FAP_HOME": "/h", "FAP_TOKEN_FILE": "/t/api.token"}
    assert read_plist(plist) == service


def test_a_plist_without_environment_has_no_environment_key(tmp_path: Path) -> None:
    plist = launchd_plist(_service(tmp_path), tmp_path / "x.log")
    assert "EnvironmentVariables" not in plist


def test_each_folder_has_its_own_label_even_with_the_same_name(tmp_path: Path) -> None:
    labels = {launchd_label(tmp_path / a / "inbox") for a in ("one", "two")}
    assert len(labels) == 2
    assert all(re.fullmatch(r"org\.fap\.watch\.inbox-[0-9a-f]{8}", label) for label in labels)
    assert launchd_label(Path("/")).startswith("org.fap.watch.root-")


# --- what install plans: absolute paths, the fap that runs, no token ---------------------------


def test_the_service_runs_this_fap_by_absolute_path(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "fap"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    python = tmp_path / "bin" / "python"
    assert fap_command(str(script), str(python)) == (str(script),)
    # ``python -m fap``: the fap script beside the interpreter, a venv's python kept unresolved.
    assert fap_command("/src/fap/__main__.py", str(python)) == (str(script),)
    lone = tmp_path / "lone" / "python"
    assert fap_command("/src/fap/__main__.py", str(lone)) == (str(lone), "-m", "fap")


def test_install_writes_no_token_into_the_service(
    fap_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inbox").mkdir()
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    warnings: list[str] = []
    environ = {"FAP_HOME": str(fap_home), "FAP_TOKEN": TOKEN}

    keyring_service = plan_service(
        Path("inbox"),
        results=Path("results"),
        server="http://127.0.0.1:8700",
        engine=None,
        token_file=None,
        environ=environ,
        warn=warnings.append,
    )
    file_service = plan_service(
        Path("inbox"),
        results=Path("results"),
        server="http://127.0.0.1:8700",
        engine=None,
        token_file=Path("api.token"),
        environ=environ,
        warn=warnings.append,
    )

    assert keyring_service.directory == tmp_path / "inbox"
    assert keyring_service.results == tmp_path / "results"
    assert keyring_service.environment == {"FAP_HOME": str(fap_home)}
    assert file_service.environment == {
        "FAP_HOME": str(fap_home),
        "FAP_TOKEN_FILE": str(token_file),
    }
    for service in (keyring_service, file_service):
        assert TOKEN not in systemd_unit(service)
        assert TOKEN not in plist_text(launchd_plist(service, tmp_path / "x.log"))
    [warning] = warnings
    assert "FAP_TOKEN is not given to the service" in warning


def test_install_records_the_server_last_used(fap_home: Path, tmp_path: Path) -> None:
    (fap_home / "last-server").write_text("http://fap.example:8700\n")
    (tmp_path / "inbox").mkdir()
    service = plan_service(
        tmp_path / "inbox",
        results=tmp_path / "results",
        server=None,
        engine=None,
        token_file=None,
        environ={},
        warn=pytest.fail,
    )
    assert service.server == "http://fap.example:8700"
    assert service.environment == {}


# --- the token file ----------------------------------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("FAP_TOKEN_FILE", raising=False)
    path = tmp_path / "api.token"
    path.write_text(f"  {TOKEN}\n")
    path.chmod(0o600)
    return path


def test_a_private_token_file_gives_its_token(token_file: Path) -> None:
    assert read_token_file(token_file) == TOKEN


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_token_file_others_can_read_is_refused_in_one_sentence(
    token_file: Path, mode: int
) -> None:
    token_file.chmod(mode)
    with pytest.raises(
        InputError, match=f"open to other users.*chmod 600 {re.escape(str(token_file))}"
    ):
        read_token_file(token_file)


def test_a_missing_empty_or_odd_token_file_is_refused_in_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_token_file(tmp_path / "nothing.token")
    empty = tmp_path / "empty.token"
    empty.touch(mode=0o600)
    with pytest.raises(InputError, match="is empty"):
        read_token_file(empty)
    fifo = tmp_path / "fifo.token"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InputError, match="not a regular file"):
        read_token_file(fifo)  # refused at once: opening a FIFO must not wait for a writer


def test_fap_token_file_signs_in_before_the_keyring_and_after_fap_token(
    fap_home: Path, token_file: Path, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory_keyring.set_password("fap", "http://fap.test", "fap_user_from_keyring")
    monkeypatch.setenv("FAP_TOKEN_FILE", str(token_file))

    settings = load_settings(server="http://fap.test")

    assert settings.token_file == token_file
    assert resolve_token(settings) == TOKEN
    given = load_settings(server="http://fap.test", token="fap_user_given")
    assert resolve_token(given) == "fap_user_given"
    monkeypatch.delenv("FAP_TOKEN_FILE")
    assert resolve_token(load_settings(server="http://fap.test")) == "fap_user_from_keyring"


async def test_credentials_come_from_the_token_file_before_any_sign_in(
    fap_home: Path, token_file: Path
) -> None:
    settings = ClientSettings(server="http://127.0.0.1:9", home=fap_home, token_file=token_file)
    credentials = await resolve_credentials(settings)
    assert credentials.token == TOKEN and credentials.renew is None


def test_the_config_file_may_name_the_token_file(fap_home: Path, token_file: Path) -> None:
    (fap_home / "config.toml").write_text(f'[client]\ntoken_file = "{token_file}"\n')
    assert load_settings(server="http://fap.test").token_file == token_file


def test_a_refused_token_file_ends_a_command_in_one_line(fap_home: Path, token_file: Path) -> None:
    token_file.chmod(0o644)
    env = {**os.environ, "FAP_TOKEN_FILE": str(token_file), "FAP_SERVER": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-m", "fap", "results", "list", "--retry-for", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines() == [
        f"error: The token file {token_file} is open to other users (mode 0644): "
        f"run chmod 600 {token_file}."
    ]
