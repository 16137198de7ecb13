"""The connection to the state store: engine, transactions, migrations.

SQLite (aiosqlite) is the embedded default. Two choices keep it safe under concurrent requests:
WAL, so readers never block the writer, and ``BEGIN IMMEDIATE`` for every transaction that writes,
so it takes the write lock up front. A deferred transaction that reads, then writes, would instead
fail at once with "database is locked" whenever another writer committed in between — the busy
timeout does not cover that upgrade. PostgreSQL needs neither and gets plain transactions.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Update, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ("Database", "sqlite_url", "update_rows")

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT_MS = 10_000
_IMMEDIATE = "fap_immediate"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


class Database:
    """An async engine with ``read()`` and ``write()`` transactions; ``migrate()`` on start."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._writer = self.engine
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            self._writer = self.engine.execution_options(**{_IMMEDIATE: True})
        self._reads = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writes = async_sessionmaker(self._writer, expire_on_commit=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._reads() as session, session.begin():
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction that commits on exit, or rolls back if the block raises."""
        async with self._writes() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic, packaged with the server)."""
        # One write transaction: two servers starting on the same store migrate one after the other.
        async with self._writer.begin() as connection:
            await connection.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()


async def update_rows(session: AsyncSession, statement: Update) -> int:
    """Run a conditional UPDATE; answer how many rows it changed (the race's verdict)."""
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return cast("CursorResult[Any]", result).rowcount


def _upgrade(connection: Connection) -> None:
    # Imported here: Alembic is a third of a second of start-up, needed once per start.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        # SQLAlchemy, not the sqlite3 driver, decides when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # In WAL mode NORMAL loses no committed data on a crash of the process, only on power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options: dict[str, Any] = dict(connection.get_execution_options())
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_IMMEDIATE) else "BEGIN")
