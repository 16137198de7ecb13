"""``fap doctor``: each check's ok, warning and failure, the checks skipped behind a failed one,
and the lines, JSON and exit code a user gets.

The server is the real app, in-process; only the Date header uvicorn stamps on every answer is
added here, since the app alone sends none.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from email.utils import formatdate
from pathlib import Path

import httpx
import keyring
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from tests.support.processes import free_port
from tests.unit.client.conftest import MemoryKeyring
from tests.unit.server.harness import BASE, Server, running_server
from typer.testing import CliRunner

from fap.api import DEVICE, ApiSession
from fap.cli.app import app
from fap.client import DeviceKeys, diagnose, exit_code_for, register_device
from fap.client.doctor import Check, Outcome
from fap.client.doctor.local import PROBE_SERVICE, check_disk, check_keyring, check_watchers
from fap.client.doctor.remote import Answer, check_clock
from fap.errors import EXIT_AUTH, EXIT_INPUT, EXIT_UNREACHABLE


class Stamped(httpx.AsyncBaseTransport):
    """The app's answers, each with the Date header uvicorn gives it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        response.headers["Date"] = formatdate(usegmt=True)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class LockedKeyring(MemoryKeyring):
    """A keyring that is there but refuses to keep anything (a locked keychain, say)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the collection is locked")


@pytest.fixture
def desk(fap_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's home with no watcher service installed, and a fap home of its own."""
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in ("FAP_ORG", "FAP_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
async def served(tmp_path: Path, desk: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data") as server:
        yield server


@pytest.fixture
def with_keyring() -> Iterator[Callable[[KeyringBackend], None]]:
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


async def doctor(
    server: Server | None,
    *,
    token: str | None = None,
    results: Path = Path("results"),
    clock: Callable[[], float] = time.time,
    transport: httpx.AsyncBaseTransport | None = None,
    url: str = BASE,
) -> dict[str, Check]:
    if transport is None and server is not None:
        transport = Stamped(httpx.ASGITransport(app=server.app))
    checks = await diagnose(
        server=url,
        token=token if token is not None else (server.owner if server else None),
        results=results,
        retry_for=0,
        transport=transport,
        clock=clock,
    )
    assert [check.name for check in checks] == [
        "config",
        "server",
        "token",
        "device key",
        "clock",
        "keyring",
        "disk space",
        "watchers",
    ]
    return {check.name: check for check in checks}


def outcomes(found: dict[str, Check]) -> dict[str, str]:
    return {name: str(check.outcome) for name, check in found.items()}


async def registered(server: Server, home: Path) -> str:
    """This device's key, made and registered as the first upload does; its device id."""
    identity = DeviceKeys(home).identity()
    async with ApiSession(
        BASE, server.owner, transport=httpx.ASGITransport(app=server.app)
    ) as session:
        return (await register_device(session, identity)).id


# -- against the server ----------------------------------------------------------------------


async def test_a_ready_desktop_passes_every_check_it_can(served: Server, fap_home: Path) -> None:
    await registered(served, fap_home)
    found = await doctor(served)
    assert outcomes(found) == {
        "config": "ok",
        "server": "ok",
        "token": "ok",
        "device key": "ok",
        "clock": "ok",
        "keyring": "warning",  # the tests' keyring is the fail backend: no OS keyring
        "disk space": "ok",
        "watchers": "ok",
    }
    assert found["server"].detail.startswith(f"{BASE} answers in API ")
    assert "local: owner" in found["token"].detail
    assert found["device key"].detail.startswith("registered as ")
    assert found["watchers"].detail == "no watcher services installed"
    assert exit_code_for(list(found.values())) == 0


async def test_a_token_the_server_refuses_fails_with_its_reason(served: Server) -> None:
    found = await doctor(served, token="fap_user_" + "x" * 40)
    assert found["token"].outcome is Outcome.FAILED
    assert "did not accept the token" in found["token"].detail
    assert found["token"].exit_code == EXIT_AUTH
    assert (found["device key"].outcome, found["device key"].detail) == (
        Outcome.SKIPPED,
        "needs a token the server takes",
    )
    assert found["clock"].outcome is Outcome.OK  # the server's clock needs no token
    assert exit_code_for(list(found.values())) == EXIT_AUTH


async def test_no_token_at_all_says_how_to_get_one(served: Server) -> None:
    found = await doctor(served, token="")
    assert found["token"].outcome is Outcome.FAILED
    assert "run fap login" in found["token"].detail


async def test_a_device_without_a_key_is_told_the_first_upload_makes_one(served: Server) -> None:
    found = await doctor(served)
    assert found["device key"].outcome is Outcome.WARNING
    assert "no key yet" in found["device key"].detail


async def test_the_doctor_makes_no_key_and_registers_none(served: Server, fap_home: Path) -> None:
    await doctor(served)
    assert not (fap_home / "device.key").exists()
    DeviceKeys(fap_home).identity()
    await doctor(served)
    listed = await served.call("GET", "/v1/devices", served.owner)
    assert listed.json()["devices"] == []


async def test_a_key_not_registered_yet_is_a_warning(served: Server, fap_home: Path) -> None:
    DeviceKeys(fap_home).identity()
    found = await doctor(served)
    assert found["device key"].outcome is Outcome.WARNING
    assert "not registered yet" in found["device key"].detail


async def test_a_revoked_key_fails(served: Server, fap_home: Path) -> None:
    device_id = await registered(served, fap_home)
    revoked = await served.call("DELETE", DEVICE.format(device_id=device_id), served.owner)
    assert revoked.status_code < 300, revoked.text
    found = await doctor(served)
    assert found["device key"].outcome is Outcome.FAILED
    assert "was revoked" in found["device key"].detail


async def test_a_newer_fap_release_is_a_warning(tmp_path: Path, desk: Path) -> None:
    async with running_server(tmp_path / "data", client_latest="99.0.0") as server:
        found = await doctor(server)
    assert found["server"].outcome is Outcome.WARNING
    assert "fap 99.0.0 is out" in found["server"].detail


@pytest.mark.parametrize(
    ("ahead", "outcome"), [(0.0, "ok"), (120.0, "warning"), (-900.0, "failed")]
)
async def test_a_clock_off_the_servers_is_a_warning_then_a_failure(
    served: Server, ahead: float, outcome: str
) -> None:
    found = await doctor(served, clock=lambda: time.time() + ahead)
    assert found["clock"].outcome == outcome
    if ahead:
        side = "ahead of" if ahead > 0 else "behind"
        assert f"{side} the server's" in found["clock"].detail


def test_clock_thresholds() -> None:
    def skew(seconds: float) -> Outcome:
        answer = Answer(BASE, date=1000.0, local=1000.0 + seconds, api_version="", client_latest="")
        return check_clock(answer).outcome

    assert [skew(s) for s in (0, 30, 31, -300, 301, -301)] == [
        Outcome.OK,
        Outcome.OK,
        Outcome.WARNING,
        Outcome.WARNING,
        Outcome.FAILED,
        Outcome.FAILED,
    ]
    no_date = Answer(BASE, date=None, local=1000.0, api_version="", client_latest="")
    assert check_clock(no_date).outcome is Outcome.WARNING


async def test_no_server_answering_fails_and_skips_what_needs_one(desk: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    found = await doctor(None, token="fap_user_" + "x" * 40, url=url)
    assert found["server"].outcome is Outcome.FAILED
    assert found["server"].detail.startswith(f"{url} did not answer (ConnectError)")
    assert found["server"].exit_code == EXIT_UNREACHABLE
    for name in ("token", "device key", "clock"):
        assert (found[name].outcome, found[name].detail) == (Outcome.SKIPPED, "needs the server")
    # What needs no server is checked all the same.
    assert found["disk space"].outcome is Outcome.OK


async def test_no_server_known_says_how_to_name_one(desk: Path) -> None:
    checks = await diagnose(server=None, token=None, results=Path("results"), retry_for=0)
    server = next(check for check in checks if check.name == "server")
    assert server.outcome is Outcome.FAILED
    assert "pass --server URL" in server.detail
    assert server.exit_code == EXIT_INPUT


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Fap-Api-Version": "2020-01-01"}, "older than API"),
        ({}, "not as a fap server does"),
    ],
    ids=["an older API", "not fap"],
)
async def test_a_server_that_cannot_serve_this_fap_fails(
    desk: Path, headers: dict[str, str], expected: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok"}, headers=headers)

    found = await doctor(None, token="t", transport=httpx.MockTransport(answer))
    assert found["server"].outcome is Outcome.FAILED
    assert expected in found["server"].detail
    assert found["token"].outcome is Outcome.SKIPPED


# -- the config file -------------------------------------------------------------------------


async def test_a_valid_config_file_is_ok(served: Server, fap_home: Path) -> None:
    (fap_home / "config.toml").write_text('[client]\norg = "local"\n[server]\nport = 8701\n')
    found = await doctor(served)
    assert found["config"].outcome is Outcome.OK
    assert found["config"].detail.endswith("is valid (2 settings)")
    assert found["token"].outcome is Outcome.OK  # in the organisation the file names


async def test_a_bad_config_file_fails_and_the_rest_is_checked_on_the_flags(
    served: Server, fap_home: Path
) -> None:
    (fap_home / "config.toml").write_text("[server]\nport = 'eighty'\n")
    found = await doctor(served)
    assert found["config"].outcome is Outcome.FAILED
    assert "server.port to 'eighty', which is not a whole number" in found["config"].detail
    assert found["config"].exit_code == EXIT_INPUT
    assert found["server"].outcome is Outcome.OK
    assert found["token"].outcome is Outcome.OK


async def test_a_config_table_fap_does_not_read_is_a_warning(
    served: Server, fap_home: Path
) -> None:
    (fap_home / "config.toml").write_text("[clinet]\nserver = 'http://x'\n")
    found = await doctor(served)
    assert found["config"].outcome is Outcome.WARNING
    assert "clinet" in found["config"].detail


# -- this machine ----------------------------------------------------------------------------


def test_a_working_keyring_is_ok_and_keeps_nothing(
    with_keyring: Callable[[KeyringBackend], None],
) -> None:
    backend = MemoryKeyring()
    with_keyring(backend)
    check = check_keyring()
    assert check.outcome is Outcome.OK
    assert backend.passwords == {}
    assert PROBE_SERVICE != "fap"  # the probe can never overwrite one of fap's own entries


def test_a_keyring_that_refuses_to_keep_is_a_warning(
    with_keyring: Callable[[KeyringBackend], None],
) -> None:
    with_keyring(LockedKeyring())
    check = check_keyring()
    assert check.outcome is Outcome.WARNING
    assert "the collection is locked" in check.detail


def test_disk_space_where_results_go(tmp_path: Path) -> None:
    assert check_disk(tmp_path).outcome is Outcome.OK
    assert "made with the first result" in check_disk(tmp_path / "not" / "yet").detail
    low = check_disk(tmp_path, low=1 << 62)
    assert low.outcome is Outcome.WARNING
    assert "--results DIR" in low.detail
    (tmp_path / "a-file").write_text("")
    not_dir = check_disk(tmp_path / "a-file")
    assert (not_dir.outcome, not_dir.exit_code) == (Outcome.FAILED, EXIT_INPUT)


def test_an_installed_watcher_not_running_is_a_warning(desk: Path) -> None:
    units = desk / ".config" / "systemd" / "user"
    units.mkdir(parents=True)
    (units / "fap-watch@home-ana-inbox.service").write_text("[Service]\nExecStart=/bin/true\n")
    # Never started: systemd calls it inactive, or there is no systemd to ask; a warning either way.
    check = check_watchers()
    assert check.outcome is Outcome.WARNING


# -- the command -----------------------------------------------------------------------------


def test_plain_lines_off_a_terminal_and_the_first_failures_exit_code(desk: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = CliRunner().invoke(
        app,
        ["doctor", "--server", url, "--retry-for", "0"],
        env={"FAP_TOKEN": "fap_user_" + "x" * 40},
        terminal_width=200,
    )
    assert done.exit_code == EXIT_UNREACHABLE, done.output
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "ok",
        "failed",
        "skipped",
        "skipped",
        "skipped",
        "warning",
        "ok",
        "ok",
    ]
    assert lines[1].startswith(f"failed   server      {url} did not answer")
    assert lines[2] == "skipped  token       needs the server"
    assert "\x1b[" not in done.stdout  # no colour into a pipe
    assert "x" * 40 not in done.output


def test_json_is_one_object_per_check(desk: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = CliRunner().invoke(
        app, ["doctor", "--server", url, "--retry-for", "0", "--json"], terminal_width=200
    )
    assert done.exit_code == EXIT_UNREACHABLE
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [set(line) for line in lines] == [{"check", "outcome", "detail"}] * 8
    assert lines[1]["check"] == "server" and lines[1]["outcome"] == "failed"
