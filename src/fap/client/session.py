"""From settings to a live :class:`~fap.api.ApiSession`: which server, which token.

The token comes from ``FAP_TOKEN`` (or ``--token``), else from the OS keyring under service
``fap`` with the server URL as user name, so a desktop keeps it out of shell history. For several
replicas the keyring entry is the whole list's, else the first replica's that has one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import keyring
import keyring.errors

from fap import __version__
from fap.api import ApiSession, parse_servers
from fap.client.keyring_names import KEYRING_SERVICE
from fap.client.private import secure_home
from fap.client.state import remember_server, resolve_server
from fap.config import ClientSettings, build
from fap.errors import AuthError, ServerUnreachable

__all__ = ("connect", "load_settings", "resolve_token")

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


def resolve_token(settings: ClientSettings) -> str:
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
            f"No API token for {settings.server}: set FAP_TOKEN "
            f"(or keep the token in the OS keyring, service {KEYRING_SERVICE!r}, "
            "user name the server URL)."
        )
    return token


@asynccontextmanager
async def connect(
    settings: ClientSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[ApiSession]:
    """An authenticated session; the server becomes the default once it has answered."""
    token = resolve_token(settings)
    async with ApiSession(
        settings.server,
        token,
        retry_for=settings.retry_for,
        user_agent=f"fap/{__version__}",
        transport=transport,
    ) as session:
        try:
            yield session
        except ServerUnreachable:
            raise
        except BaseException:
            remember_server(settings.home, settings.server)
            raise
        remember_server(settings.home, settings.server)
