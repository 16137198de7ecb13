"""Everything a client command holds while it runs, opened and closed together.

An API session, one keep-alive HTTP client for blob traffic (presigned URLs carry their own
authority, so it sends no token), a thread pool sized to the cores for hashing, compression and
file reads, and the device's identity, registered with the server before the first upload.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from fap.api import ApiSession, tls_context
from fap.client.device import DeviceKeys, register_device
from fap.client.session import connect
from fap.client.state import learned_level, remember_level
from fap.client.uploader import Uploader
from fap.config import ClientSettings
from fap.crypto import DeviceIdentity
from fap.transfer.schedule import BandwidthSchedule

__all__ = ("Runtime", "open_runtime")


@dataclass
class Runtime:
    settings: ClientSettings
    session: ApiSession
    blobs: httpx.AsyncClient
    uploader: Uploader
    keys: DeviceKeys
    _registered: DeviceIdentity | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def identity(self) -> DeviceIdentity:
        # Keyring backends may block (D-Bus, a keychain prompt): not on the event loop.
        return await asyncio.to_thread(self.keys.identity)

    async def device(self) -> DeviceIdentity:
        """The device identity, registered with the server (once per run; idempotent there)."""
        async with self._lock:
            if self._registered is None:
                identity = await self.identity()
                await register_device(self.session, identity)
                self._registered = identity
            return self._registered


@asynccontextmanager
async def open_runtime(
    settings: ClientSettings,
    *,
    warn: Callable[[str], None] | None = None,
    bwlimit: BandwidthSchedule | float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Runtime]:
    """Open a runtime; ``bwlimit`` caps the upload rate (bytes per second, or a schedule of
    rates by the time of day); ``transport`` replaces the network (tests pass an in-process
    fake)."""
    if isinstance(bwlimit, int | float):
        bwlimit = BandwidthSchedule.constant(bwlimit) if bwlimit > 0 else None
    workers = os.cpu_count() or 1
    async with connect(settings, transport=transport, warn=warn) as session:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fap-client")
        try:
            limits = httpx.Limits(
                max_connections=max(8, settings.parallel_puts * 2),
                max_keepalive_connections=max(8, settings.parallel_puts * 2),
            )
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(60.0, connect=10.0),
                limits=limits,
                transport=transport,
                verify=tls_context(),
            ) as blobs:
                uploader = Uploader(
                    session,
                    settings,
                    blobs=blobs,
                    executor=pool,
                    workers=workers,
                    bwlimit=bwlimit,
                    level=learned_level(settings.home),
                )
                yield Runtime(settings, session, blobs, uploader, DeviceKeys(settings.home, warn))
                # Where the next run starts: what this one learned of the link (not on a failure).
                remember_level(settings.home, uploader.levels.level)
        finally:
            # Work still queued is for a run that is ending (Ctrl-C, an error): drop it.
            pool.shutdown(wait=False, cancel_futures=True)
