"""``fap login``, ``fap whoami``, ``fap logout`` as a person runs them: real processes, a real
``fap serve --oidc ISSUER=fap-cli`` and a real OpenID Connect provider whose pages the test walks
as the person at the browser would, reading the code from the login's first line of output.

No keyring here (PYTHON_KEYRING_BACKEND is the failing one), so the session is kept in the 0600
file in FAP_HOME, as on a headless box; no browser opens (no terminal, and --json).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from fap.api import INVITATIONS, Invitation
from fap.errors import EXIT_AUTH, EXIT_INPUT, EXIT_UNREACHABLE
from tests.e2e.conftest import VERBOSE
from tests.support.oidc_provider import Lifetimes, OidcProvider
from tests.support.processes import ServerProcess, fap_argv

CLIENT = "fap-cli"
# A cold start of the CLI is ~1 s on an idle 2-core machine; a busy one may take many times that.
_FIRST_LINE_TIMEOUT = 120.0
_RUN_TIMEOUT = 180.0

StartProvider = Callable[..., OidcProvider]
StartServer = Callable[..., ServerProcess]


@dataclass
class Desktop:
    """One user's machine: a FAP_HOME of its own, no keyring, no FAP_TOKEN."""

    tmp: Path
    server_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "FAP_HOME": str(self.tmp / "home"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "FAP_SERVER": self.server_url,
            **self.extra_env,
        }
        for name in ("FAP_TOKEN", "CI"):
            env.pop(name, None)
        return env

    def _log(self, name: str) -> Path:
        # A command's stderr is its log, kept where the secret scan looks.
        return self.tmp / f"client-{len(list(self.tmp.glob('client-*.log')))}-{name}.log"

    def login(self, *args: str) -> Login:
        """Start ``fap login --json``; its first line comes when it shows the code."""
        with self._log("login").open("w") as log:
            process = subprocess.Popen(
                fap_argv("login", "--json", VERBOSE, *args),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        self.started.append(process)
        return Login(process, Path(log.name))

    def fap(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            fap_argv(*args, VERBOSE),
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_RUN_TIMEOUT,
            check=False,
        )
        self._log(args[0]).write_text(done.stderr)
        return done

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


@dataclass
class Login:
    process: subprocess.Popen[str]
    log_path: Path

    def code(self) -> dict[str, Any] | None:
        """The first line: where to go and the code (None if the login ended without one)."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], _FIRST_LINE_TIMEOUT)
        assert ready, f"no first line within {_FIRST_LINE_TIMEOUT:g} s:\n{self.stderr()}"
        line = self.process.stdout.readline()
        return json.loads(line) if line else None

    def finish(self) -> tuple[int, list[dict[str, Any]]]:
        """The exit code, and the lines printed after the first."""
        out, _ = self.process.communicate(timeout=_RUN_TIMEOUT)
        return self.process.returncode, [json.loads(line) for line in out.splitlines() if line]

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def provider(oidc_provider: StartProvider) -> OidcProvider:
    return oidc_provider()


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Callable[..., Desktop]]:
    made: list[Desktop] = []

    def make(server: ServerProcess, **extra_env: str) -> Desktop:
        made.append(Desktop(tmp_path, server.url, extra_env))
        return made[-1]

    yield make
    for one in made:
        one.stop()


def serve_trusting(start_server: StartServer, provider: OidcProvider, **env: str) -> ServerProcess:
    return start_server(VERBOSE, "--oidc", f"{provider.issuer}={CLIENT}", env=env)


def invite(server: ServerProcess, email: str) -> None:
    """The local organisation's owner invites ``email`` as a member."""
    headers = {"Authorization": f"Bearer {server.owner_token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers) as api:
        body = msgspec.json.encode(Invitation(email=email, role="member"))
        response = api.post(INVITATIONS.format(org="local"), content=body)
        assert response.status_code < 300, response.text


def test_login_then_whoami_then_logout(
    start_server: StartServer, provider: OidcProvider, desktop: Callable[..., Desktop]
) -> None:
    server = serve_trusting(start_server, provider)
    invite(server, "alice@example.com")
    machine = desktop(server)
    login = machine.login()
    code = login.code()
    assert code is not None, login.stderr()
    assert set(code) == {"verification_uri", "verification_uri_complete", "user_code", "expires_in"}
    assert code["verification_uri"] == f"{provider.issuer}/device"
    provider.approve(code["user_code"], "alice")  # the person, at their browser
    status, lines = login.finish()
    assert status == 0, login.stderr()
    member = [{"org": "local", "role": "member"}]
    assert lines == [
        {
            "user_id": lines[0]["user_id"],
            "email": "alice@example.com",
            "orgs": member,
            "joined": member,
        }
    ]
    stderr = login.stderr()
    assert code["user_code"] in stderr and code["verification_uri"] in stderr
    assert "Traceback" not in stderr

    whoami = machine.fap("whoami", "--json")  # no token given: the stored session
    assert whoami.returncode == 0, whoami.stderr
    me = json.loads(whoami.stdout)
    assert (me["email"], me["orgs"], me["token_kind"]) == ("alice@example.com", member, "session")

    logout = machine.fap("logout")
    assert logout.returncode == 0, logout.stderr
    assert f"Signed out of {server.url}." in logout.stderr

    after = machine.fap("whoami", "--json")
    assert after.returncode == EXIT_AUTH
    assert after.stderr.strip().splitlines()[-1] == (
        f"error: You are not signed in to {server.url}: run fap login, or set FAP_TOKEN to an "
        "API token (or keep one in the OS keyring, service 'fap', user name the server URL)."
    )
    assert after.stdout == "" and "Traceback" not in after.stderr


def test_a_server_trusting_no_provider_says_so(
    start_server: StartServer, desktop: Callable[..., Desktop]
) -> None:
    machine = desktop(start_server(VERBOSE))
    login = machine.login()
    assert login.code() is None
    status, lines = login.finish()
    assert (status, lines) == (EXIT_AUTH, [])
    assert "trusts no identity provider" in login.stderr()
    assert "Traceback" not in login.stderr()


def test_a_provider_that_is_down_says_so(
    start_server: StartServer, provider: OidcProvider, desktop: Callable[..., Desktop]
) -> None:
    server = serve_trusting(start_server, provider)
    provider.stop()
    login = desktop(server).login()
    assert login.code() is None
    status, _ = login.finish()
    assert status == EXIT_UNREACHABLE, login.stderr()
    assert f"The identity provider {provider.issuer} does not answer" in login.stderr()
    assert "Traceback" not in login.stderr()


def test_a_person_who_denies_the_request(
    start_server: StartServer, provider: OidcProvider, desktop: Callable[..., Desktop]
) -> None:
    server = serve_trusting(start_server, provider)
    login = desktop(server).login()
    code = login.code()
    assert code is not None, login.stderr()
    provider.deny(code["user_code"])
    status, lines = login.finish()
    assert (status, lines) == (EXIT_AUTH, []), login.stderr()
    assert "The sign-in was denied at" in login.stderr()
    assert "Traceback" not in login.stderr()


def test_a_code_nobody_approves_expires(
    start_server: StartServer, oidc_provider: StartProvider, desktop: Callable[..., Desktop]
) -> None:
    provider = oidc_provider(lifetimes=Lifetimes(device_code=3))
    server = serve_trusting(start_server, provider)
    login = desktop(server).login()
    code = login.code()
    assert code is not None and code["expires_in"] == 3, login.stderr()
    status, lines = login.finish()
    assert (status, lines) == (EXIT_AUTH, []), login.stderr()
    assert "The sign-in code expired before it was approved" in login.stderr()
    assert "Traceback" not in login.stderr()


def test_login_with_msal_against_an_https_provider(
    start_server: StartServer, oidc_provider: StartProvider, desktop: Callable[..., Desktop]
) -> None:
    provider = oidc_provider(https=True, path="/tenant")
    assert provider.ca_path is not None
    ca = str(provider.ca_path)
    # The server fetches the provider's keys with httpx (SSL_CERT_FILE); msal speaks requests,
    # which takes REQUESTS_CA_BUNDLE before anything else.
    server = serve_trusting(start_server, provider, SSL_CERT_FILE=ca)
    machine = desktop(server, REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca)
    login = machine.login("--provider", "microsoft", "--issuer", provider.issuer)
    code = login.code()
    assert code is not None, login.stderr()
    provider.approve(code["user_code"], "bob")
    status, lines = login.finish()
    assert status == 0, login.stderr()
    assert [line["email"] for line in lines] == ["bob@example.com"]
    whoami = machine.fap("whoami", "--json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["email"] == "bob@example.com"


def test_several_providers_off_a_terminal_are_chosen_with_issuer(
    start_server: StartServer, oidc_provider: StartProvider, desktop: Callable[..., Desktop]
) -> None:
    first, second = oidc_provider(), oidc_provider()
    server = start_server(
        VERBOSE, "--oidc", f"{first.issuer}={CLIENT}", "--oidc", f"{second.issuer}={CLIENT}"
    )
    machine = desktop(server)
    unsure = machine.login()
    assert unsure.code() is None
    assert unsure.finish() == (EXIT_INPUT, [])
    assert unsure.stderr().strip().splitlines()[-1] == (
        f"error: The server at {server.url} trusts several identity providers ({first.issuer}, "
        f"{second.issuer}); choose one with --issuer URL."
    )
    stranger = machine.login("--issuer", "https://idp.example")
    assert stranger.code() is None
    assert stranger.finish() == (EXIT_INPUT, [])
    assert stranger.stderr().strip().splitlines()[-1] == (
        f"error: The server at {server.url} does not trust the identity provider "
        f"https://idp.example; it trusts {first.issuer}, {second.issuer}."
    )
    chosen = machine.login("--issuer", second.issuer)
    code = chosen.code()
    assert code is not None and code["verification_uri"].startswith(second.issuer)
    second.approve(code["user_code"], "alice")
    status, lines = chosen.finish()
    assert status == 0, chosen.stderr()
    assert [line["email"] for line in lines] == ["alice@example.com"]
