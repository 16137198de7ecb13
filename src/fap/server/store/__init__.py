"""The state store: SQLAlchemy 2 (async) tables, Alembic migrations, and repositories over them.

SQLite is the embedded default; the SQL stays portable so a PostgreSQL store needs a URL, not code
(the few statements whose spelling differs, ``INSERT … ON CONFLICT``, come from ``Database.insert``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fap.server.store.accounts import (
    Accounts,
    Identity,
    NewOrg,
    OrgAccess,
    Quotas,
    SignedIn,
    org_quotas,
)
from fap.server.store.audit import Actor, Audit, Change
from fap.server.store.credentials import (
    Credential,
    Credentials,
    NewToken,
    Refreshed,
    RefreshOutcome,
)
from fap.server.store.database import Database
from fap.server.store.devices import Devices
from fap.server.store.jobs import Backlog, Jobs, Lapse, Recorded, WorkerSeen
from fap.server.store.members import Members
from fap.server.store.models import (
    AuditEvent,
    Chunk,
    Device,
    Invitation,
    Org,
    Pack,
    Token,
    Upload,
    User,
)
from fap.server.store.outages import StoreUnavailable, store_unavailable
from fap.server.store.packs import Packs
from fap.server.store.uploads import ChunkOutcome, ChunkRecord, NewUpload, Uploads
from fap.server.store.urls import database_url, is_postgresql, libpq_dsn, sqlite_url

__all__ = (
    "Accounts",
    "Actor",
    "Audit",
    "AuditEvent",
    "Backlog",
    "Change",
    "Chunk",
    "ChunkOutcome",
    "ChunkRecord",
    "Credential",
    "Credentials",
    "Database",
    "Device",
    "Devices",
    "Identity",
    "Invitation",
    "Jobs",
    "Lapse",
    "Members",
    "NewOrg",
    "NewToken",
    "NewUpload",
    "Org",
    "OrgAccess",
    "Pack",
    "Packs",
    "Quotas",
    "Recorded",
    "RefreshOutcome",
    "Refreshed",
    "SignedIn",
    "Store",
    "StoreUnavailable",
    "Token",
    "Upload",
    "Uploads",
    "User",
    "WorkerSeen",
    "database_url",
    "is_postgresql",
    "libpq_dsn",
    "org_quotas",
    "sqlite_url",
    "store_unavailable",
)


@dataclass
class Store:
    """One database and its repositories."""

    db: Database
    accounts: Accounts = field(init=False)
    members: Members = field(init=False)
    credentials: Credentials = field(init=False)
    devices: Devices = field(init=False)
    audit: Audit = field(init=False)
    uploads: Uploads = field(init=False)
    jobs: Jobs = field(init=False)
    packs: Packs = field(init=False)
    _opened: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.accounts = Accounts(self.db)
        self.members = Members(self.db)
        self.credentials = Credentials(self.db)
        self.devices = Devices(self.db)
        self.audit = Audit(self.db)
        self.uploads = Uploads(self.db)
        self.jobs = Jobs(self.db)
        self.packs = Packs(self.db)

    @classmethod
    def connect(cls, url: str) -> Store:
        return cls(Database(url))

    async def open(self) -> None:
        """Migrate the schema, once: ``fap serve`` opens the store before the app's start-up, so
        that a database out of reach is one sentence rather than a failed start-up's traceback."""
        if not self._opened:
            await self.db.migrate()
            self._opened = True

    async def close(self) -> None:
        await self.db.dispose()
