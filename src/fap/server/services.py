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
    def embedded(cls, settings: ServerSettings, clock: Clock = time.time) -> Services:
        """The embedded default: SQLite and blobs in the data directory, in-process wake-ups."""
        data = settings.data_dir
        return cls(
            settings=settings,
            store=Store.connect(sqlite_url(data / DATABASE_FILE)),
            blobs=LocalBlobStore(data / "blobs", data / BLOB_SECRET_FILE, settings.base_url, clock),
            notifier=LocalNotifier(),
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
