"""From settings to a live :class:`~fap.api.ApiSession`: which server, which token.

The token, in this order: ``FAP_TOKEN`` (or ``--token``); else the session ``fap login`` stored
for the server (:mod:`fap.client.credentials`), its access token refreshed when it expires within
a minute, and renewed whenever the server refuses it, so that a long ``fap watch`` outlives
every access token; else an API token kept in the OS keyring under service ``fap`` with the
server URL as user name, so a desktop keeps it out of shell history. For several replicas that
keyring entry is the whole list's, else the first replica's that has one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import keyring
import keyring.errors

from fap import __version__
from fap.api import ApiSession, parse_servers
from fap.client.credentials import SignedInSession
from fap.client.keyring_names import KEYRING_SERVICE
from fap.client.private import secure_home
from fap.client.releases import release_notice
from fap.client.state import remember_server, resolve_server
from fap.config import ClientSettings, build
from fap.errors import AuthError, ServerUnreachable

__all__ = ("Credentials", "connect", "load_settings", "resolve_credentials", "resolve_token")

log = logging.getLogger(__name__)


def load_settings(
    *, server: str | None, warn: Callable[[str], None] | None = None, **overrides: Any
) -> ClientSettings:
    """Client settings with the server resolved: the one given, else the last one used.

    A fap home that others can read is tightened here, before any command writes to it.
    """
    settings = build(ClientSettings, server=server, **overrides)
    secure_home(settings.home, warn)
    return dataclasses.replace(settings, server=resolve_server(settings.server, settings.home))


@dataclass(frozen=True, slots=True)
class Credentials:
    """The bearer token a session starts with, and how to renew it (a sign-in's only)."""

    token: str
    renew: Callable[[], Awaitable[str]] | None = None


async def resolve_credentials(
    settings: ClientSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> Credentials:
    """FAP_TOKEN (``--token``), else the stored sign-in, else the keyring's API token."""
    if settings.token:
        return Credentials(settings.token)
    signed_in = await SignedInSession.load(settings, transport=transport)
    if signed_in is not None:
        return Credentials(await signed_in.token(), signed_in.renew)
    return Credentials(resolve_token(settings))


def resolve_token(settings: ClientSettings) -> str:
    """The token given (FAP_TOKEN, ``--token``), else the API token in the OS keyring.

    A stored sign-in is not looked at: refreshing it needs the server, which
    :func:`resolve_credentials` (and :func:`connect`) may ask.
    """
    if settings.token:
        return settings.token
    names = dict.fromkeys([settings.server, *parse_servers(settings.server)])
    token = None
    try:
        for name in names:
            if token := keyring.get_password(KEYRING_SERVICE, name):
                break
    except (keyring.errors.KeyringError, RuntimeError, OSError) as error:
        log.debug("no keyring to read the token from: %s", error)
        token = None
    if not token:
        raise AuthError(
            f"You are not signed in to {settings.server}: run fap login, or set FAP_TOKEN to an "
            f"API token (or keep one in the OS keyring, service {KEYRING_SERVICE!r}, user name "
            "the server URL)."
        )
    return token


@asynccontextmanager
async def connect(
    settings: ClientSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    warn: Callable[[str], None] | None = None,
) -> AsyncIterator[ApiSession]:
    """An authenticated session; the server becomes the default once it has answered.

    ``warn`` (default: this module's log) is told that the server deprecated the API version
    this fap speaks (once), and that a newer fap is out (at most once a day: ``releases``).
    """
    credentials = await resolve_credentials(settings, transport=transport)

    def on_release(latest: str) -> None:
        if notice := release_notice(settings.home, latest):
            (warn or log.warning)(notice)

    async with ApiSession(
        settings.server,
        credentials.token,
        retry_for=settings.retry_for,
        user_agent=f"fap/{__version__}",
        transport=transport,
        org=settings.org,
        renew=credentials.renew,
        warn=warn,
        on_release=on_release,
    ) as session:
        try:
            yield session
        except ServerUnreachable:
            raise
        except BaseException:
            remember_server(settings.home, settings.server)
            raise
        remember_server(settings.home, settings.server)
