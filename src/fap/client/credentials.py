"""A signed-in session kept between commands: stored, locked, refreshed.

``fap login`` leaves the server's access and refresh tokens in the OS keyring (service ``fap``,
user name ``session:`` + the server URL), or, where no keyring works, in a 0600 file in the fap
home. Later commands use the access token until it expires within a minute, then renew it in
two steps: the identity provider's refresh token gets a fresh ID token of the person (the server
renews a session only for one, so that a person the provider disabled is shut out within
minutes), then the server's refresh token and that ID token get the next access and refresh
tokens. Each step's rotated tokens are stored as soon as it is done, so a failure in the second
does not lose what the first rotated.

Refresh tokens rotate, and a reused one ends the session on the server (it must assume a copy).
Two fap processes (a watcher and an upload, say) holding the same stored session must therefore
never both refresh it: read, refresh and write happen under an exclusive ``flock`` on a file in the
fap home, and the stored session is read again once the lock is held, since the process that held
it before may have rotated the tokens already.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import msgspec

from fap.api import AUTH_REFRESH, Refresh, SessionTokens
from fap.client.private import FILE_MODE, make_private_dir
from fap.client.public_api import PublicApi
from fap.client.session_store import SessionStore, StoredSession
from fap.client.signin import ProviderChoice, ProviderGrant, ProviderTokens, renewed_tokens
from fap.config import ClientSettings
from fap.errors import AuthError, InputError

__all__ = (
    "LOCK_NAME",
    "REFRESH_MARGIN",
    "SignedInSession",
    "forget_session",
    "remember_session",
    "session_lock",
)

LOCK_NAME = "session.lock"
REFRESH_MARGIN = 60.0  # seconds: an access token expiring sooner is refreshed before use
# A holder keeps the lock for one renewal: two requests to the identity provider (20 s timeouts)
# and one to the server, which gives up after its retry budget. A lock held far longer than that
# belongs to a process that is stuck, and waiting on is pointless.
_LOCK_SLACK = 60.0
_LOCK_POLL_FIRST = 0.01
_LOCK_POLL_MAX = 0.2


@asynccontextmanager
async def session_lock(home: Path, timeout: float) -> AsyncIterator[None]:
    """Hold the fap home's session lock (exclusive, across processes) inside the block.

    A non-blocking ``flock`` tried again after short pauses, rather than a blocking one in a
    thread: a cancelled wait must not leave a thread that takes the lock later and keeps it.
    The lock goes with the file descriptor, also when the process dies.
    """
    try:
        make_private_dir(home)
        fd = os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as error:
        raise InputError(
            f"The session lock {home / LOCK_NAME} cannot be opened: {error.strerror}."
        ) from error
    try:
        deadline = time.monotonic() + timeout
        pause = _LOCK_POLL_FIRST
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() + pause > deadline:
                    raise AuthError(
                        f"Another fap process has held the session lock {home / LOCK_NAME} for "
                        f"{timeout:g} s; stop it, or try again."
                    ) from None
                await asyncio.sleep(pause)
                pause = min(_LOCK_POLL_MAX, pause * 2)
        yield
    finally:
        os.close(fd)  # releases the lock


def _renewed(stored: StoredSession, tokens: SessionTokens, now: float) -> StoredSession:
    return msgspec.structs.replace(
        stored,
        refresh_token=tokens.refresh_token,
        access_token=tokens.access_token,
        access_expires_at=now + tokens.expires_in,
        session_expires_at=tokens.session_expires_at,
    )


async def remember_session(
    settings: ClientSettings,
    tokens: SessionTokens,
    choice: ProviderChoice,
    provider: ProviderTokens,
    *,
    client_secret: str | None = None,
    warn: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Store a new sign-in for ``settings.server``, replacing any session kept for it."""
    stored = StoredSession(
        refresh_token=tokens.refresh_token,
        access_token=tokens.access_token,
        access_expires_at=clock() + tokens.expires_in,
        session_expires_at=tokens.session_expires_at,
        issuer=choice.issuer,
        kind=choice.kind,
        client_id=choice.client_id,
        provider_refresh_token=provider.refresh_token,
        client_secret=client_secret or None,
    )
    store = SessionStore(settings.home, warn)
    async with session_lock(settings.home, settings.retry_for + _LOCK_SLACK):
        await asyncio.to_thread(store.save, settings.server, stored)


async def forget_session(settings: ClientSettings) -> bool:
    """Remove the stored session of ``settings.server``; False if there was none."""
    store = SessionStore(settings.home)
    async with session_lock(settings.home, settings.retry_for + _LOCK_SLACK):
        return await asyncio.to_thread(store.forget, settings.server)


class SignedInSession:
    """The stored session of one server, as a source of access tokens for an ApiSession.

    ``token()`` answers a fresh access token, refreshing first if it expires within
    ``REFRESH_MARGIN``; ``renew()`` is for after the server refused one (give it to ApiSession as
    ``renew=``). Both take the session lock for any refresh.
    """

    def __init__(
        self,
        settings: ClientSettings,
        stored: StoredSession,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        provider_tls: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._store = SessionStore(settings.home)
        self._stored = stored
        self._transport = transport
        self._provider_tls = provider_tls
        self._clock = clock

    @classmethod
    async def load(
        cls,
        settings: ClientSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        provider_tls: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = time.time,
    ) -> SignedInSession | None:
        """The stored session of ``settings.server``, or None if nobody signed in to it here.
        ``transport`` reaches the fap server, ``provider_tls`` verifies the identity provider."""
        stored = await asyncio.to_thread(SessionStore(settings.home).load, settings.server)
        if stored is None:
            return None
        return cls(settings, stored, transport=transport, provider_tls=provider_tls, clock=clock)

    async def token(self) -> str:
        if self._fresh(self._stored):
            return self._stored.access_token
        return await self._refresh(refused=None)

    async def renew(self) -> str:
        """A new access token, the server having refused the one last handed out."""
        return await self._refresh(refused=self._stored.access_token)

    def _fresh(self, stored: StoredSession) -> bool:
        return stored.access_expires_at - self._clock() > REFRESH_MARGIN

    async def _refresh(self, *, refused: str | None) -> str:
        server = self.settings.server
        async with session_lock(self.settings.home, self.settings.retry_for + _LOCK_SLACK):
            # Read again under the lock: another process may have refreshed, or signed out.
            stored = await asyncio.to_thread(self._store.load, server)
            if stored is None:
                raise AuthError(f"You are signed out of {server}; sign in again with fap login.")
            if stored.access_token != refused and self._fresh(stored):
                self._stored = stored  # rotated by another process meanwhile: use its tokens
                return stored.access_token
            if stored.session_expires_at <= self._clock():
                await asyncio.to_thread(self._store.forget, server)
                raise AuthError(
                    f"Your session with {server} has expired; sign in again with fap login."
                )
            if stored.provider_refresh_token is None:
                raise AuthError(
                    f"Your session with {server} needs renewing, and {stored.issuer} gave no "
                    "refresh token to renew it with; sign in again with fap login."
                )
            grant = ProviderGrant(
                kind=stored.kind,
                issuer=stored.issuer,
                client_id=stored.client_id,
                refresh_token=stored.provider_refresh_token,
                client_secret=stored.client_secret,
            )
            provider = await renewed_tokens(grant, provider_tls=self._provider_tls)
            if provider.refresh_token != stored.provider_refresh_token:
                # Rotated: the old one is spent, whatever happens next.
                stored = msgspec.structs.replace(
                    stored, provider_refresh_token=provider.refresh_token
                )
                await asyncio.to_thread(self._store.save, server, stored)
            tokens = await self._exchange(stored.refresh_token, provider.id_token)
            self._stored = _renewed(stored, tokens, self._clock())
            await asyncio.to_thread(self._store.save, server, self._stored)
            return self._stored.access_token

    async def _exchange(self, refresh_token: str, id_token: str) -> SessionTokens:
        server = self.settings.server
        async with PublicApi(
            server, retry_for=self.settings.retry_for, transport=self._transport
        ) as api:
            try:
                return await api.send(
                    "POST",
                    AUTH_REFRESH,
                    Refresh(refresh_token=refresh_token, id_token=id_token),
                    returns=SessionTokens,
                    what=f"Renewing your session with {server}",
                )
            except AuthError:
                # The server ended the session (signed out, expired, or its refresh token was
                # used twice): what is stored can never work again.
                await asyncio.to_thread(self._store.forget, server)
                raise
