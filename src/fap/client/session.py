"""From settings to a live :class:`~fap.api.ApiSession`: which server, which token.

The token, in this order: ``FAP_TOKEN`` (or ``--token``); else the file ``FAP_TOKEN_FILE`` names
(a service's, on a machine with no keyring); else the session ``fap login`` stored
for the server (:mod:`fap.client.credentials`), its access token refreshed when it expires within
a minute, and renewed whenever the server refuses it, so that a long ``fap watch`` outlives
every access token; else an API token kept in the OS keyring under service ``fap`` with the
server URL as user name, so a desktop keeps it out of shell history. For several replicas that
keyring entry is the whole list's, else the first replica's that has one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
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
from fap.errors import AuthError, InputError, ServerUnreachable

__all__ = (
    "Credentials",
    "connect",
    "load_settings",
    "read_token_file",
    "resolve_credentials",
    "resolve_token",
)

log = logging.getLogger(__name__)


def load_settings(
    *, server: str | None, warn: Callable[[str], None] | None = None, **overrides: Any
) -> ClientSettings:
    """Client settings with the server resolved: the one given, else the last one used.

    A fap home that others can read is tightened here, before any command writes to it.
    """
    # FAP_TOKEN_FILE has no flag: a service's environment names it, no command line does.
    overrides.setdefault("token_file", os.environ.get("FAP_TOKEN_FILE") or None)
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
    """FAP_TOKEN (``--token``), else FAP_TOKEN_FILE, else the stored sign-in, else the keyring's
    API token."""
    if settings.token:
        return Credentials(settings.token)
    if settings.token_file:
        return Credentials(read_token_file(settings.token_file))
    signed_in = await SignedInSession.load(settings, transport=transport)
    if signed_in is not None:
        return Credentials(await signed_in.token(), signed_in.renew)
    return Credentials(resolve_token(settings))


def resolve_token(settings: ClientSettings) -> str:
    """The token given (FAP_TOKEN, ``--token``; FAP_TOKEN_FILE), else the API token in the OS
    keyring.

    A stored sign-in is not looked at: refreshing it needs the server, which
    :func:`resolve_credentials` (and :func:`connect`) may ask.
    """
    if settings.token:
        return settings.token
    if settings.token_file:
        return read_token_file(settings.token_file)
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


def read_token_file(path: Path) -> str:
    """The API token in ``path``, a file only its user may read (``chmod 600``), as ssh asks of
    a private key: a token others can read is a token others have."""
    try:
        # Opened, then checked: the mode is the opened file's, not that of one swapped in since.
        # O_NONBLOCK: a FIFO put there opens at once (and is refused) instead of hanging.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(
            f"The token file {path} does not exist: FAP_TOKEN_FILE must name a file holding "
            "an API token."
        ) from None
    except OSError as error:
        raise InputError(f"The token file {path} cannot be read: {error.strerror}.") from None
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise InputError(f"The token file {path} is not a regular file.")
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            raise InputError(
                f"The token file {path} is open to other users (mode {mode:04o}): "
                f"run chmod 600 {path}."
            )
        token = handle.read(4096).decode("utf-8", errors="replace").strip()
    if not token:
        raise InputError(f"The token file {path} is empty: write an API token into it.")
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
