"""``fap doctor``: is this desktop ready to upload, and if not, what to do about it.

The checks run in the order they depend on one another: the config file, then the server, the
token it takes, this device's key as the server knows it and the clock beside the server's; then
what needs no server: the keyring, the disk space where results go, the watcher services. A check
whose ground failed is skipped, and says which.

The doctor looks and changes nothing: it makes no device key and registers none, and the server it
asked does not become the default of later commands.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

from fap.client.doctor.check import Check, Outcome, skipped
from fap.client.doctor.local import check_config, check_disk, check_keyring, check_watchers
from fap.client.doctor.remote import check_clock, check_device, check_server, check_token
from fap.client.settings_file import config_path
from fap.config import ClientSettings, build
from fap.errors import ConfigError

__all__ = ("diagnose",)


async def diagnose(
    *,
    server: str | None,
    token: str | None,
    results: Path,
    retry_for: float,
    org: str | None = None,
    environ: Mapping[str, str] = os.environ,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> list[Check]:
    """Every check, in order; ``transport`` stands in for the network and ``clock`` for this
    machine's (tests), ``environ`` for the environment (FAP_TOKEN_FILE)."""
    config, settings = await asyncio.to_thread(
        _settings,
        server=server,
        token=token,
        org=org,
        retry_for=retry_for,
        # As every client command reads it (fap.client.session): a service's environment names it.
        token_file=environ.get("FAP_TOKEN_FILE") or None,
    )
    checks = [config]
    async with AsyncExitStack() as stack:
        reached, answer = await check_server(settings, transport=transport, clock=clock)
        checks.append(reached)
        if answer is None:
            checks += [
                skipped(name, "needs the server") for name in ("token", "device key", "clock")
            ]
        else:
            accepted, session = await check_token(settings, answer, stack, transport=transport)
            checks.append(accepted)
            if session is None:
                checks.append(skipped("device key", "needs a token the server takes"))
            else:
                checks.append(await check_device(session, settings.home))
            checks.append(check_clock(answer))
    checks.append(await asyncio.to_thread(check_keyring))
    checks.append(await asyncio.to_thread(check_disk, results))
    checks.append(await asyncio.to_thread(check_watchers))
    return checks


def _settings(
    *,
    server: str | None,
    token: str | None,
    org: str | None,
    retry_for: float,
    token_file: str | None,
) -> tuple[Check, ClientSettings]:
    """The config file's check, and the settings the other checks use."""
    config = check_config(config_path())
    try:
        if config.outcome is Outcome.FAILED:
            raise ConfigError(config.detail)
        return config, build(
            ClientSettings,
            server=server,
            token=token,
            org=org,
            retry_for=retry_for,
            token_file=token_file,
        )
    except ConfigError:
        # The other checks still tell something, on the flags and the built-in defaults.
        return config, ClientSettings(
            server=server or "",
            token=token,
            org=org,
            retry_for=retry_for,
            token_file=None if token_file is None else Path(token_file).expanduser(),
        )
