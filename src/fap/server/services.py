"""Everything a request may use, built once per app from the settings and passed to the routes."""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from fap.config import ServerSettings
from fap.errors import ConfigError
from fap.server.auth import bootstrap_local
from fap.server.auth.id_tokens import IdTokenVerifier
from fap.server.blobs import BlobStore, LocalBlobStore, blob_store_for
from fap.server.cleanup import Cleanup
from fap.server.metrics import Metrics
from fap.server.queue import Clock, JobQueue, LocalNotifier, Notifier, PgNotifier
from fap.server.secrets import ServerSecrets
from fap.server.store import Store, database_url, is_postgresql, libpq_dsn

__all__ = ("BLOB_SECRET_FILE", "DATABASE_FILE", "Services", "prepare_data_dir")

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
    secrets: ServerSecrets = field(default_factory=lambda: ServerSecrets({}))
    metrics: Metrics = field(init=False)
    queue: JobQueue = field(init=False)
    cleanup: Cleanup = field(init=False)
    verifier: IdTokenVerifier = field(init=False)
    _opened: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.store.jobs, self.clock)
        self.queue = JobQueue(
            self.store,
            self.notifier,
            self.settings,
            self.clock,
            blobs=self.blobs,
            metrics=self.metrics,
        )
        self.cleanup = Cleanup(self.store, self.blobs, self.notifier, self.settings, self.clock)
        self.verifier = IdTokenVerifier(self.settings.trusted_issuers)

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
            secrets=ServerSecrets.from_settings(settings),
        )

    async def open(self) -> None:
        """The part of start-up that a wrong setting or a service out of reach makes fail: the
        data directory, the secrets, the object store, the state store (migrated). Once.

        ``fap serve`` opens the services before the HTTP server starts, so that each such failure
        is one sentence (a FapError or StoreUnavailable) rather than a failed start-up's traceback.
        """
        if self._opened:
            return
        await asyncio.to_thread(prepare_data_dir, self.settings.data_dir)
        await self.secrets.load()
        if isinstance(self.blobs, LocalBlobStore):
            key = await self.secrets.blob_signing_key()
            if key is not None:
                self.blobs.use_signing_key(key)
        await self.blobs.open()
        await self.store.open()
        self._opened = True

    async def start(self) -> None:
        """Open (unless opened already), bootstrap, start the background tasks."""
        await self.open()
        await self.notifier.open()
        await bootstrap_local(self.store, self.settings, self.clock())
        await self.verifier.open()
        self.queue.start_sweeper()
        self.cleanup.start()
        self.metrics.start()
        logger.info("fap server ready; data in %s", self.settings.data_dir)

    async def stop(self) -> None:
        await self.verifier.close()
        await self.metrics.stop()
        self.notifier.stop()
        await self.queue.stop_sweeper()
        await self.cleanup.stop()
        await self.notifier.close()
        await self.blobs.close()
        await self.store.close()


def prepare_data_dir(data: Path) -> None:
    """Create the data directory 0700, or make an existing one private (it holds the state store,
    the blobs and the signing key); warn if it cannot be made so. Raises ConfigError if it
    cannot be created or written to."""
    try:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(data.stat().st_mode)
        _make_private(data, mode)
        probe = data / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(
            f"The data directory {data} cannot be used: {error.strerror or error}."
        ) from error


def _make_private(data: Path, mode: int) -> None:
    if not mode & 0o077:
        return
    try:
        data.chmod(0o700)
    except OSError as error:
        logger.warning(
            "The data directory %s can be read by others (mode %o) and cannot be made private: "
            "%s; run chmod 700 on it.",
            data,
            mode,
            error.strerror or error,
        )
        return
    logger.warning(
        "The data directory %s could be read by others (mode %o); it is 0700 now.", data, mode
    )


def _store_for(settings: ServerSettings) -> Store:
    return Store.connect(database_url(settings.db, settings.data_dir / DATABASE_FILE))


def _blobs_for(settings: ServerSettings, clock: Clock) -> BlobStore:
    data = settings.data_dir
    return blob_store_for(
        settings.storage,
        default_root=data / "blobs",
        secret_path=data / BLOB_SECRET_FILE,
        base_url=settings.base_url,
        clock=clock,
    )


def _notifier_for(settings: ServerSettings) -> Notifier:
    """In-process wake-ups for SQLite (one server); LISTEN/NOTIFY shared by every replica on
    PostgreSQL."""
    url = database_url(settings.db, settings.data_dir / DATABASE_FILE)
    return PgNotifier(libpq_dsn(url)) if is_postgresql(url) else LocalNotifier()
