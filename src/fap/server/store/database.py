"""The connection to the state store: engine, transactions, migrations.

SQLite (aiosqlite) is the embedded default. Two choices keep it safe under concurrent requests:
WAL, so readers never block the writer, and ``BEGIN IMMEDIATE`` for every transaction that writes,
so it takes the write lock up front. A deferred transaction that reads, then writes, would instead
fail at once with "database is locked" whenever another writer committed in between — the busy
timeout does not cover that upgrade. The file is made 0600 and switched to WAL before the first
connection (``sqlite_file``: that switch needs retries of its own).

PostgreSQL (asyncpg) gets plain READ COMMITTED transactions: every state change is a conditional
UPDATE or an ``INSERT … ON CONFLICT``, and rows are picked with ``FOR UPDATE SKIP LOCKED``, so
concurrent replicas never need more.

A PostgreSQL restart must not need a server restart. A pooled connection the database closed is
replaced when it is checked out, at no cost: asyncpg noticed the close already. (SQLAlchemy's
``pool_pre_ping`` would cost three round trips on every checkout.) A connection that breaks in use
makes SQLAlchemy recycle the whole pool; the store then retries work that is safe to repeat
(``outages.retried``), and anything else, or a database out of reach, is :class:`StoreUnavailable`,
which requests answer 503 and callers retry.

SQL parameters are never logged, at any level (``hide_parameters``): they hold lease tokens.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import asyncpg
from sqlalchemy import Connection, CursorResult, Update, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from fap.errors import ConfigError
from fap.server.store.outages import StoreUnavailable, is_outage, reason_of, store_unavailable
from fap.server.store.sqlite_file import BUSY_TIMEOUT_MS, prepare_sqlite_file
from fap.server.store.urls import is_postgresql, sqlite_url

__all__ = ("Database", "Insert", "sqlite_url", "update_rows")

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
_IMMEDIATE = "fap_immediate"
# Any constant of our own: replicas that start together on one PostgreSQL database take this
# advisory lock around the migrations, so one migrates and the others find the schema current.
_MIGRATION_LOCK = 0x66_61_70_5F_6D_69_67  # "fap_mig"
# Seen in pg_stat_activity, so an operator can tell fap's connections from others'.
APPLICATION_NAME = "fap-serve"

Insert = postgresql.Insert | sqlite.Insert


class Database:
    """An async engine with ``read()`` and ``write()`` transactions; ``migrate()`` on start."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = not is_postgresql(url)
        if self.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(url, hide_parameters=True)
            _configure_sqlite(self.engine)
            self._writer = self.engine.execution_options(**{_IMMEDIATE: True})
        else:
            self.engine = create_async_engine(
                url,
                hide_parameters=True,
                connect_args={"server_settings": {"application_name": APPLICATION_NAME}},
            )
            _configure_postgresql(self.engine)
            self._writer = self.engine
        self._reads = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writes = async_sessionmaker(self._writer, expire_on_commit=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with _outages_reported(), self._reads() as session, session.begin():
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction that commits on exit, or rolls back if the block raises."""
        async with _outages_reported(), self._writes() as session, session.begin():
            yield session

    def insert(self, model: type[DeclarativeBase]) -> Insert:
        """An INSERT with this database's ``on_conflict_do_…`` (both dialects spell it alike)."""
        return sqlite.insert(model) if self.is_sqlite else postgresql.insert(model)

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest revision (Alembic, packaged with the server); tests
        name an older ``revision``, to make a database as an older release left it.

        The server's first contact with its database, so its errors say which database: raises
        StoreUnavailable if it is out of reach, ConfigError if it refuses us (no such database,
        a wrong password).
        """
        shown = make_url(self.url).render_as_string(hide_password=True)
        try:
            if self.is_sqlite:
                await asyncio.to_thread(prepare_sqlite_file, Path(self.engine.url.database or ""))
            # One write transaction: servers starting together on one store migrate one after the
            # other (SQLite: its write lock; PostgreSQL: the advisory lock, released at commit).
            async with _outages_reported(), self._writer.connect() as connection:
                if self.is_sqlite:
                    await connection.run_sync(_sqlite_foreign_keys, False)
                try:
                    async with connection.begin():
                        if not self.is_sqlite:
                            await _lock_for_migrations(connection)
                        await connection.run_sync(_upgrade, revision)
                        if self.is_sqlite:
                            await connection.run_sync(_check_foreign_keys)
                finally:
                    if self.is_sqlite:
                        await connection.run_sync(_sqlite_foreign_keys, True)
        except StoreUnavailable as error:
            raise StoreUnavailable(
                f"The state store {shown} cannot be reached: {reason_of(error.__cause__ or error)}; "
                "is the database running?",
                lost_connection=False,
            ) from error
        except (DBAPIError, asyncpg.PostgresError, sqlite3.Error, OSError) as error:
            raise ConfigError(
                f"The state store {shown} cannot be used: {reason_of(error)}."
            ) from error

    async def dispose(self) -> None:
        await self.engine.dispose()


async def update_rows(session: AsyncSession, statement: Update) -> int:
    """Run a conditional UPDATE; answer how many rows it changed (the race's verdict)."""
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return cast("CursorResult[Any]", result).rowcount


async def update_each(
    session: AsyncSession, statement: Update, parameters: Sequence[Mapping[str, Any]]
) -> None:
    """Run a conditional UPDATE once per set of ``parameters`` (its ``bindparam`` values), as
    one executemany in the session's transaction: compiled once, handed to the driver at once.
    The driver counts the changed rows of all of them together, so the caller reads back which
    changed (a value each row was given)."""
    if parameters:
        connection = await session.connection()
        await connection.execute(statement, list(parameters))


@asynccontextmanager
async def _outages_reported() -> AsyncIterator[None]:
    """A database out of reach becomes StoreUnavailable (503); every other error stays itself."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as error:
        if is_outage(error):
            raise store_unavailable(error) from error
        raise


async def _lock_for_migrations(connection: AsyncConnection) -> None:
    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})


def _sqlite_foreign_keys(connection: Connection, enabled: bool) -> None:
    """Turn SQLite's foreign-key checks off for the migrations, and on again after.

    SQLite alters a table by copying it and dropping the original (Alembic's batch mode), and with
    the checks on, dropping a table that other rows refer to fails ("FOREIGN KEY constraint
    failed"): every database with users failed to reach 0005. So, as SQLite's documentation for
    schema changes says, the checks are off while the migrations run, and the migrated rows are
    checked before the commit (``_check_foreign_keys``). The PRAGMA goes to the DBAPI connection
    itself, outside any transaction: SQLite ignores it inside one, and SQLAlchemy would begin one.
    """
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")
    finally:
        cursor.close()


def _check_foreign_keys(connection: Connection) -> None:
    """Every reference the migrated rows hold points at a row: else nothing is committed."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchmany(5)
    if broken:
        shown = ", ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in broken)
        raise sqlite3.IntegrityError(f"the migrations would leave references to no row ({shown})")


def _upgrade(connection: Connection, revision: str) -> None:
    # Imported here: Alembic is a third of a second of start-up, needed once per start.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _configure_postgresql(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        # A database that restarted closed its end of every pooled connection, and asyncpg saw
        # it close: the pool replaces such a connection (up to three times) instead of using it.
        driver: asyncpg.Connection | None = record.driver_connection
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the database closed this connection")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        # SQLAlchemy, not the sqlite3 driver, decides when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: every statement after it waits for a lock another connection
        # holds rather than failing at once. (WAL is set by prepare_sqlite_file before the first
        # connection; here it is a no-op that takes no write lock.)
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # In WAL mode NORMAL loses no committed data on a crash of the process, only on power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options: dict[str, Any] = dict(connection.get_execution_options())
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_IMMEDIATE) else "BEGIN")
