"""The everyday access commands as a user runs them: ``fap org``, ``fap user``, ``fap token``,
``fap keys`` and ``fap audit`` as real processes against a real ``fap serve``.

One server for the module, trusting a real OpenID Connect provider: the local owner acts with its
token from the data dir; everyone else signs in (the provider's device flow, then the server's
``/v1/auth/sign-in``) and runs the CLI with the session's access token. Tests keep apart by the
names they use: each signs in its own person and makes its own tokens, invitations and domains.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from fap.api import AUTH_SIGN_IN, SessionTokens
from fap.errors import EXIT_AUTH, EXIT_INPUT, EXIT_SERVER
from tests.support.oidc_provider import ALICE, OidcAccount, OidcProvider, OidcProviderError
from tests.support.processes import ServerProcess, fap_argv, free_port
from tests.support.secrets_scan import SecretScan, logs_under

pytestmark = pytest.mark.e2e

CLIENT_ID = "fap-cli"
# Signs in to make organisations of her own; nobody invites her anywhere.
CAROL = OidcAccount("carol", "carol@example.net", name="Carol Example")


@dataclass
class World:
    """The module's server, its identity provider, and every secret the tests were given."""

    server: ServerProcess
    provider: OidcProvider
    root: Path
    home: Path
    secrets: set[str] = field(default_factory=set)

    def fap(
        self, *args: str, token: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """One CLI command to its end, off a terminal, as the local owner unless ``token``."""
        full_env = {
            **os.environ,
            "FAP_HOME": str(self.home),
            "FAP_SERVER": self.server.url,
            "FAP_TOKEN": token or self.server.owner_token,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        }
        full_env.pop("FAP_ORG", None)  # the one a developer's shell may hold
        full_env.update(env or {})
        done = subprocess.run(
            fap_argv(*args),
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        # A command's stderr is its log, scanned for secrets with the server's at the end.
        number = len(list(self.root.glob("client-*.log")))
        (self.root / f"client-{number}-{args[0]}.log").write_text(done.stderr)
        return done

    def ok(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        done = self.fap(*args, token=token)
        assert done.returncode == 0, f"fap {' '.join(args)}: {done.stderr}"
        assert done.stderr == "", done.stderr  # no warning, no note: a quiet success
        return done

    def json_lines(self, *args: str, token: str | None = None) -> list[dict[str, Any]]:
        return [
            json.loads(line) for line in self.ok(*args, "--json", token=token).stdout.splitlines()
        ]

    def sign_in(self, account: OidcAccount) -> str:
        """The person signs in at the provider; the server's access token for them."""
        id_token = self.provider.device_flow(CLIENT_ID, account=account.subject)["id_token"]
        self.secrets.add(id_token)
        answer = httpx.post(
            f"{self.server.url}{AUTH_SIGN_IN}", json={"id_token": id_token}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        session = msgspec.json.decode(answer.content, type=SessionTokens)
        self.secrets.update((session.access_token, session.refresh_token))
        return session.access_token

    def new_token(self, *args: str, token: str | None = None) -> dict[str, Any]:
        [created] = self.json_lines("token", "create", *args, token=token)
        self.secrets.add(created["token"])
        return created


def refused(done: subprocess.CompletedProcess[str], exit_code: int, *phrases: str) -> str:
    """The command failed as a user mistake should: one sentence on stderr, the exit code."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert done.returncode == exit_code, (done.returncode, done.stderr)
    assert done.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("access-cli")
    home = root / "home"
    home.mkdir(mode=0o700)
    provider = OidcProvider(root / "oidc", accounts=(ALICE, CAROL))
    try:
        provider.start()
    except OidcProviderError as error:
        pytest.fail(str(error), pytrace=False)
    port = free_port()
    data = root / "data"
    server = ServerProcess(
        argv=fap_argv(
            "serve",
            "--verbose",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--oidc",
            f"{provider.issuer}={CLIENT_ID}",
        ),
        log_path=root / "server.log",
        port=port,
        data_dir=data,
    )
    try:
        server.start()
        server.wait_ready()
        world = World(server=server, provider=provider, root=root, home=home)
        world.secrets.update((server.owner_token, server.processor_token))
        yield world
    finally:
        server.stop()
        provider.stop()
    # No log of the module's — the server's at debug level, every command's stderr — holds one.
    scan = SecretScan()
    scan.add_tree(root)
    for secret in world.secrets:
        scan.add(secret, "a token the tests were given")
    scan.check(logs_under(root))


def test_a_token_is_printed_once_works_and_stops_working_once_revoked(world: World) -> None:
    made = world.fap("token", "create", "--role", "member", "--name", "[red]ci")
    assert made.returncode == 0, made.stderr
    [text] = made.stdout.splitlines()  # the token alone: TOKEN=$(fap token create …)
    assert text.startswith("fap_user_")
    world.secrets.add(text)
    assert "shown this once" in made.stderr and text not in made.stderr
    assert world.fap("status", token=text).returncode == 0

    before = time.time()
    created = world.new_token("--role", "viewer", "--expires", "30d")
    assert set(created) == {"id", "token", "role", "expires_at"}
    assert created["role"] == "viewer"
    assert before + 30 * 86400 - 5 <= created["expires_at"] <= time.time() + 30 * 86400 + 5

    listed = world.ok("token", "list").stdout
    [row] = [line.split("\t") for line in listed.splitlines() if "[red]ci" in line]
    assert row[1:3] == ["[red]ci", "member"] and row[-1] == "active"  # the name as written
    by_id = {line["id"]: line for line in world.json_lines("token", "list")}
    assert by_id[created["id"]]["expires_at"] == pytest.approx(created["expires_at"])
    for secret in (text, created["token"]):
        assert secret not in listed and secret not in json.dumps(list(by_id.values()))

    member_id = row[0]
    assert "Revoked token" in world.ok("token", "revoke", member_id).stdout
    refused(world.fap("status", token=text), EXIT_AUTH, "revoked")
    refused(world.fap("token", "revoke", member_id), EXIT_SERVER, "no active token")
    [line] = [line for line in world.ok("token", "list").stdout.splitlines() if member_id in line]
    assert line.split("\t")[-1].startswith("revoked ")


def test_processor_tokens_are_for_owners_and_admins(world: World) -> None:
    member = world.new_token("--role", "member", "--name", "member's")["token"]
    refused(
        world.fap("token", "create", "--role", "processor", token=member),
        EXIT_AUTH,
        "Only owners and admins may make processor tokens.",
    )
    refused(world.fap("token", "create", "--role", "admin", token=member), EXIT_AUTH, "is member")
    assert world.new_token("--role", "processor")["role"] == "processor"
    refused(world.fap("token", "create", "--role", "boss"), EXIT_INPUT, "'boss' is no token role")
    refused(
        world.fap("token", "create", "--role", "member", "--expires", "soon"),
        EXIT_INPUT,
        "--expires must be a duration",
    )


def test_an_invited_user_is_listed_then_joins_by_signing_in(world: World) -> None:
    [invited] = world.json_lines("user", "invite", ALICE.email, "--role", "member")
    assert (invited["email"], invited["role"]) == (ALICE.email, "member")
    rows = [line.split("\t") for line in world.ok("user", "list").stdout.splitlines()]
    assert ["-", "-", ALICE.email, "member"] in [row[:4] for row in rows]

    alice = world.sign_in(ALICE)
    [org] = world.json_lines("org", "show", token=alice)  # her only organisation: no --org
    assert (org["name"], org["role"]) == ("local", "member")
    members = {line["email"]: line for line in world.json_lines("user", "list")}
    assert (members[ALICE.email]["status"], members[ALICE.email]["role"]) == ("member", "member")

    assert "is now viewer in local" in world.ok("user", "role", ALICE.email, "viewer").stdout
    [org] = world.json_lines("org", "show", token=alice)
    assert org["role"] == "viewer"
    world.ok("user", "remove", members[ALICE.email]["user_id"])
    assert ALICE.email not in world.ok("user", "list").stdout
    refused(world.fap("org", "show", token=alice), EXIT_AUTH, "no organisation yet")


def test_member_changes_that_cannot_be_made_are_refused_in_one_sentence(world: World) -> None:
    [owner] = [
        m for m in world.json_lines("user", "list") if m.get("user_id") and m["role"] == "owner"
    ]
    refused(world.fap("user", "role", "nobody@example.com", "admin"), EXIT_SERVER, "has no member")
    refused(world.fap("user", "remove", "nobody@example.com"), EXIT_SERVER, "has no member")
    refused(world.fap("user", "role", owner["user_id"], "boss"), EXIT_INPUT, "'boss' is no role")
    refused(world.fap("user", "invite", "someone@example.com", "--role", "chief"), EXIT_INPUT)
    # The last owner can neither leave nor step down: the organisation would have none.
    refused(world.fap("user", "remove", owner["user_id"]), EXIT_SERVER, "only owner")
    refused(world.fap("user", "role", owner["user_id"], "member"), EXIT_SERVER, "only owner")


def test_keys_list_shows_the_device_an_upload_registered_and_revokes_it(
    world: World, tmp_path: Path
) -> None:
    sample = tmp_path / "sample.txt"
    sample.write_text("a file to analyse\n")
    uploaded = world.fap("upload", str(sample), "--no-wait", "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    [device] = [d for d in world.json_lines("keys", "list") if d["revoked_at"] is None]
    assert device["recipient"].startswith("age1")
    [row] = [line.split("\t") for line in world.ok("keys", "list").stdout.splitlines()]
    assert (row[0], row[2], row[-1]) == (device["id"], device["recipient"], "active")

    assert "Revoked device" in world.ok("keys", "revoke", device["id"]).stdout
    [after] = world.json_lines("keys", "list")
    assert after["revoked_at"] is not None
    refused(world.fap("keys", "revoke", device["id"]), EXIT_SERVER, "no active device")


def test_org_show_and_who_may_join_by_signing_in(world: World) -> None:
    shown = world.ok("org", "show").stdout.splitlines()
    assert "name: local" in shown and "your role: owner" in shown
    [org] = world.json_lines("org", "show", "local")
    assert (org["name"], org["role"]) == ("local", "owner")

    issuer = world.provider.issuer
    [access] = world.json_lines(
        "org", "access", "--issuer", issuer, "--domain", "Example.org=viewer"
    )
    assert access == {"issuers": [issuer], "domains": {"example.org": "viewer"}}
    assert world.ok("org", "access").stdout.splitlines() == [
        f"issuer\t{issuer}",
        "domain\texample.org\tviewer",
    ]
    refused(world.fap("org", "access", "--domain", "example.org=owner"), EXIT_SERVER, "invite them")
    refused(world.fap("org", "access", "--domain", "example.org"), EXIT_INPUT, "DOMAIN=ROLE")
    refused(world.fap("org", "access", "--clear", "--issuer", issuer), EXIT_INPUT, "--clear")
    assert world.json_lines("org", "access", "--clear") == [{"issuers": [], "domains": {}}]
    assert world.ok("org", "access").stdout == ""


def test_an_organisation_the_token_is_not_in_is_a_clear_error(world: World) -> None:
    commands = (
        ("org", "show"),
        ("user", "list"),
        ("token", "list"),
        ("audit", "list"),
        ("status",),
        ("results", "list"),
    )
    for command in commands:
        refused(world.fap(*command, "--org", "elsewhere"), EXIT_SERVER, "acts in local alone")
    assert world.ok("status", "--org", "local").stdout.startswith("workers online")


def test_a_signed_in_user_creates_lists_and_deletes_organisations(world: World) -> None:
    carol = world.sign_in(CAROL)
    refused(world.fap("org", "show", token=carol), EXIT_AUTH, "fap org create NAME")
    [lab] = world.json_lines("org", "create", "carol-lab", token=carol)
    assert (lab["name"], lab["role"]) == ("carol-lab", "owner")
    made = world.ok("org", "create", "carol-two", token=carol).stdout
    assert made == "Created organisation carol-two; you are its owner.\n"

    listed = world.ok("org", "list", token=carol).stdout.splitlines()
    assert sorted(line.split("\t")[:2] for line in listed) == [
        ["carol-lab", "owner"],
        ["carol-two", "owner"],
    ]
    refused(world.fap("org", "show", token=carol), EXIT_INPUT, "(carol-lab, carol-two)", "--org")
    [two] = world.json_lines("org", "show", "--org", "carol-two", token=carol)
    assert two["name"] == "carol-two"
    by_env = world.fap("org", "show", "--json", token=carol, env={"FAP_ORG": "carol-lab"})
    assert json.loads(by_env.stdout)["name"] == "carol-lab", by_env.stderr
    refused(world.fap("token", "list", "--org", "local", token=carol), EXIT_SERVER, "no member")

    refused(world.fap("org", "delete", "carol-two", token=carol), EXIT_INPUT, "--yes")
    assert world.ok("org", "delete", "carol-two", "--yes", token=carol).stdout == (
        "Deleted organisation carol-two.\n"
    )
    assert [o["name"] for o in world.json_lines("org", "list", token=carol)] == ["carol-lab"]
    # Organisations are made and listed by people signed in, not by API tokens.
    refused(world.fap("org", "create", "ci-made"), EXIT_AUTH, "signed-in users")
    refused(world.fap("org", "list"), EXIT_AUTH, "sign in")


def test_the_audit_log_shows_the_changes_just_made_and_no_token(world: World) -> None:
    made = world.new_token("--role", "viewer", "--name", "audited")
    world.ok("token", "revoke", made["id"])
    world.ok("user", "invite", "dave@example.com", "--role", "viewer")

    events = world.json_lines("audit", "list", "--limit", "20")
    assert {"at", "actor", "action", "target", "details", "remote"} <= set(events[0])
    changes = [(event["action"], event["target"]) for event in events]
    assert changes[:3] == [
        ("member.invite", "dave@example.com"),
        ("token.revoke", made["id"]),
        ("token.create", made["id"]),
    ]
    assert len(world.ok("audit", "list", "--limit", "2").stdout.splitlines()) == 2
    plain = world.ok("audit", "list").stdout
    for secret in world.secrets:
        assert secret not in plain and secret not in json.dumps(events)

    viewer = world.new_token("--role", "viewer")["token"]
    refused(world.fap("audit", "list", token=viewer), EXIT_AUTH, "needs admin")
    refused(world.fap("audit", "list", "--limit", "5000"), EXIT_INPUT, "between 1 and")
