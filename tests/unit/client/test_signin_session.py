"""A sign-in kept between commands: stored (keyring, else a 0600 file), refreshed before it
expires and whenever the server refuses it, refreshed once however many processes need it, and
ended by signing out, with the real server app in-process and a real OpenID Connect provider."""

from __future__ import annotations

import asyncio
import stat
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import msgspec
import pytest
from tests.support.oidc_provider import OidcProvider
from tests.unit.client.conftest import MemoryKeyring
from tests.unit.client.signin_support import Person
from tests.unit.server.harness import BASE, Server, running_server

from fap.api import AUTH_REFRESH, AUTH_SIGN_OUT, INVITATIONS, ME, Invitation, Membership
from fap.client import SignedIn, SignOutOutcome, resolve_credentials, sign_in, sign_out, who_am_i
from fap.client.credentials import LOCK_NAME, SignedInSession
from fap.client.session_store import SESSIONS_FILE, SessionStore, StoredSession
from fap.config import ClientSettings
from fap.errors import AuthError

CLIENT = "fap-cli"
ACCESS_SECONDS = 15 * 60  # the server's
StartProvider = Callable[..., OidcProvider]


class Counting(httpx.AsyncBaseTransport):
    """The app's transport, counting requests by path."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.paths: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] += 1
        return await self.inner.handle_async_request(request)


@pytest.fixture
def provider(oidc_provider: StartProvider) -> OidcProvider:
    return oidc_provider()


@pytest.fixture
async def server(tmp_path: Path, provider: OidcProvider) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data", oidc=(f"{provider.issuer}={CLIENT}",)) as running:
        yield running


@pytest.fixture
def transport(server: Server) -> Counting:
    return Counting(httpx.ASGITransport(app=server.app))


@pytest.fixture
def settings(fap_home: Path) -> ClientSettings:
    return ClientSettings(server=BASE, home=fap_home, retry_for=5.0)


async def signed_in(
    settings: ClientSettings,
    provider: OidcProvider,
    transport: httpx.AsyncBaseTransport,
    warnings: list[str] | None = None,
) -> SignedIn:
    person = Person(provider)
    result = await sign_in(
        settings,
        person,
        transport=transport,
        warn=None if warnings is None else warnings.append,
    )
    person.check()
    return result


def stored(settings: ClientSettings) -> StoredSession | None:
    return SessionStore(settings.home).load(settings.server)


def late(seconds: float) -> Callable[[], float]:
    """This machine's clock, ``seconds`` ahead."""
    return lambda: time.time() + seconds


async def test_signing_in_keeps_the_session_in_a_private_file_without_a_keyring(
    server: Server, provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    invite = Invitation(email="alice@example.com", role="member")
    await server.ok("POST", INVITATIONS.format(org="local"), server.owner, invite, returns=dict)
    warnings: list[str] = []
    result = await signed_in(settings, provider, transport, warnings)
    member = [Membership(org="local", role="member")]
    assert (result.email, result.orgs, result.joined) == ("alice@example.com", member, member)
    assert result.issuer == provider.issuer
    path = settings.home / SESSIONS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert warnings == [f"no OS keyring is available; the session is kept in {path} (mode 0600)."]
    kept = msgspec.json.decode(path.read_bytes())[BASE]
    assert {"refresh_token", "access_token", "access_expires_at", "issuer"} <= kept.keys()
    assert kept["issuer"] == provider.issuer and kept["provider_refresh_token"]
    assert time.time() + ACCESS_SECONDS - 5 < kept["access_expires_at"] <= time.time() + 900
    # A later command needs no token given.
    me = await who_am_i(settings, transport=transport)
    assert (me.email, me.token_kind, me.orgs) == ("alice@example.com", "session", member)
    assert transport.paths[AUTH_REFRESH] == 0


async def test_with_a_keyring_the_session_is_kept_there(
    provider: OidcProvider,
    transport: Counting,
    settings: ClientSettings,
    memory_keyring: MemoryKeyring,
) -> None:
    await signed_in(settings, provider, transport)
    kept = msgspec.json.decode(memory_keyring.passwords[("fap", f"session:{BASE}")])
    assert kept["access_token"].startswith("fap_session_")
    assert not (settings.home / SESSIONS_FILE).exists()


async def test_fap_token_comes_before_a_stored_session(
    server: Server, provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    await signed_in(settings, provider, transport)
    given = ClientSettings(server=BASE, home=settings.home, token=server.owner)
    credentials = await resolve_credentials(given, transport=transport)
    assert (credentials.token, credentials.renew) == (server.owner, None)


async def test_an_access_token_expiring_within_a_minute_is_refreshed_before_use(
    server: Server, provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    await signed_in(settings, provider, transport)
    before = stored(settings)
    assert before is not None
    session = await SignedInSession.load(
        settings, transport=transport, clock=late(ACCESS_SECONDS - 30)
    )
    assert session is not None
    token = await session.token()
    after = stored(settings)
    assert after is not None and after.access_token == token != before.access_token
    assert after.refresh_token != before.refresh_token  # rotated, and stored
    assert after.provider_refresh_token != before.provider_refresh_token  # the provider's too
    assert transport.paths[AUTH_REFRESH] == 1
    assert (await server.call("GET", ME, token)).status_code == 200
    # Fresh now: asked again, it is used as it is.
    assert await session.token() == token
    assert transport.paths[AUTH_REFRESH] == 1


async def test_two_processes_needing_a_refresh_at_once_refresh_once(
    server: Server, provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    await signed_in(settings, provider, transport)
    # Two loads, two file descriptors on the lock file: flock keeps them apart as it would two
    # processes. A second use of one refresh token would end the session on the server.
    watcher, upload = [
        await SignedInSession.load(settings, transport=transport, clock=late(ACCESS_SECONDS))
        for _ in range(2)
    ]
    assert watcher is not None and upload is not None
    first, second = await asyncio.gather(watcher.token(), upload.token())
    assert first == second
    assert transport.paths[AUTH_REFRESH] == 1
    assert (await server.call("GET", ME, first)).status_code == 200
    lock = settings.home / LOCK_NAME
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


async def test_a_process_finding_the_tokens_rotated_by_another_uses_them(
    server: Server, provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    await signed_in(settings, provider, transport)
    watcher = await SignedInSession.load(settings, transport=transport)
    other = await SignedInSession.load(
        settings, transport=transport, clock=late(ACCESS_SECONDS - 10)
    )
    assert watcher is not None and other is not None
    rotated = await other.token()
    # The watcher's copy is stale; the server refuses it (say), and it renews: the lock held, it
    # reads the store again and takes the tokens the other process stored, refreshing nothing.
    assert await watcher.renew() == rotated
    assert transport.paths[AUTH_REFRESH] == 1
    assert (await server.call("GET", ME, rotated)).status_code == 200


async def test_a_long_running_command_renews_a_token_the_server_refuses(
    server: Server, provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    await signed_in(settings, provider, transport)
    transport.paths.clear()
    server.clock.advance(ACCESS_SECONDS + 60)  # this machine's clock thinks it fresh still
    me = await who_am_i(settings, transport=transport)
    assert me.email == "alice@example.com"
    assert transport.paths[AUTH_REFRESH] == 1
    assert transport.paths[ME] == 2  # refused once, then answered


async def test_a_session_ended_on_the_server_says_to_sign_in_again(
    server: Server, provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    await signed_in(settings, provider, transport)
    kept = stored(settings)
    assert kept is not None
    response = await server.call("POST", AUTH_SIGN_OUT, kept.access_token)
    assert response.status_code == 204  # signed out elsewhere (or ended by an admin)
    with pytest.raises(AuthError, match=r"sign in again \(fap login\)"):
        await who_am_i(settings, transport=transport)
    assert stored(settings) is None  # it can never work again


async def test_a_provider_that_no_longer_vouches_for_the_person_ends_the_renewals(
    provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    await signed_in(settings, provider, transport)
    provider.restart()  # it forgets every grant: as if the person's account were disabled
    session = await SignedInSession.load(settings, transport=transport, clock=late(ACCESS_SECONDS))
    assert session is not None
    with pytest.raises(AuthError, match=r"no longer renews your sign-in .*sign in again"):
        await session.token()
    assert transport.paths[AUTH_REFRESH] == 0


async def test_signing_out_ends_the_session_and_forgets_it(
    server: Server, provider: OidcProvider, transport: Counting, settings: ClientSettings
) -> None:
    await signed_in(settings, provider, transport)
    kept = stored(settings)
    assert kept is not None
    assert await sign_out(settings, transport=transport) is SignOutOutcome.SIGNED_OUT
    assert stored(settings) is None
    assert (await server.call("GET", ME, kept.access_token)).status_code == 401
    with pytest.raises(AuthError, match=r"^You are not signed in to http://127.0.0.1:8700: run"):
        await who_am_i(settings, transport=transport)
    assert await sign_out(settings, transport=transport) is SignOutOutcome.NOT_SIGNED_IN


async def test_signing_out_of_a_server_that_does_not_answer_forgets_the_session(
    settings: ClientSettings,
) -> None:
    away = ClientSettings(server="http://127.0.0.1:1", home=settings.home, retry_for=0)
    kept = StoredSession(
        refresh_token="fap_refresh_x",
        access_token="fap_session_x",
        access_expires_at=time.time() + 600,
        session_expires_at=time.time() + 3600,
        issuer="https://idp.example",
    )
    SessionStore(away.home).save(away.server, kept)
    assert await sign_out(away) is SignOutOutcome.UNREACHABLE
    assert stored(away) is None


async def test_a_server_trusting_no_provider_is_said_so(
    tmp_path: Path, provider: OidcProvider, fap_home: Path
) -> None:
    async with running_server(tmp_path / "bare") as bare:
        settings = ClientSettings(server=BASE, home=fap_home, retry_for=5.0)
        person = Person(provider)
        with pytest.raises(AuthError, match="trusts no identity provider"):
            await sign_in(settings, person, transport=httpx.ASGITransport(app=bare.app))
        assert person.codes == []  # found out before any code was shown
