"""Everything a request may use, built once per app from the settings and passed to the routes."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from fap.config import ServerSettings
from fap.errors import ConfigError
from fap.server.auth import bootstrap_local
from fap.server.blobs import BlobStore, LocalBlobStore
from fap.server.notify import LocalNotifier, Notifier
from fap.server.queue import Clock, JobQueue
from fap.server.store import Store, sqlite_url

__all__ = ("BLOB_SECRET_FILE", "DATABASE_FILE", "Services")

logger = logging.getLogger(__name__)

DATABASE_FILE = "fap.db"
BLOB_SECRET_FILE = "blob-signing.key"  # noqa: S105 (a file name)


@dataclass
class Services:
    settings: ServerSettings
    store: Store
    blobs: BlobStore
    notifier: Notifier
    clock: Clock
    queue: JobQueue = field(init=False)

    def __post_init__(self) -> None:
        self.queue = JobQueue(self.store, self.notifier, self.settings, self.clock)

    @classmethod
    def from_settings(cls, settings: ServerSettings, clock: Clock = time.time) -> Services:
        """The store, blobs and wake-ups the settings name; the embedded defaults where they
        name none (SQLite and blobs in the data directory, in-process wake-ups)."""
        return cls(
            settings=settings,
            store=_store_for(settings),
            blobs=_blobs_for(settings, clock),
            notifier=_notifier_for(settings),
            clock=clock,
        )

    async def start(self) -> None:
        """Prepare the data directory, migrate the store, bootstrap, start the sweeper."""
        data = self.settings.data_dir
        try:
            await asyncio.to_thread(data.mkdir, mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"The data directory {data} cannot be created: {error}.") from error
        await self.blobs.open()
        await self.store.open()
        await bootstrap_local(self.store, self.settings, self.clock())
        self.queue.start_sweeper()
        logger.info("fap server ready; data in %s", data)

    async def stop(self) -> None:
        self.notifier.stop()
        await self.queue.stop_sweeper()
        await self.blobs.close()
        await self.store.close()


def _store_for(settings: ServerSettings) -> Store:
    if not settings.db:
        return Store.connect(sqlite_url(settings.data_dir / DATABASE_FILE))
    raise ConfigError(f"The state store {settings.db!r} is not supported.")


def _blobs_for(settings: ServerSettings, clock: Clock) -> BlobStore:
    if not settings.storage:
        data = settings.data_dir
        return LocalBlobStore(data / "blobs", data / BLOB_SECRET_FILE, settings.base_url, clock)
    raise ConfigError(f"The object store {settings.storage!r} is not supported.")


def _notifier_for(settings: ServerSettings) -> Notifier:
    return LocalNotifier()
