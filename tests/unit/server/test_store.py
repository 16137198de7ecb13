"""The state store: the same migrations build exactly the models' schema on SQLite and PostgreSQL,
servers starting together migrate once, and SQLite runs in WAL mode."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from tests.unit.server.harness import both_backends

from fap.server.store import Store, sqlite_url
from fap.server.store.models import Base

TABLES = {"orgs", "users", "tokens", "devices", "uploads", "chunks", "workers"}


@pytest.fixture
def store_url(db_url: str, tmp_path: Path) -> str:
    return db_url or sqlite_url(tmp_path / "fap.db")


async def migrated(url: str) -> Store:
    store = Store.connect(url)
    await store.open()
    return store


async def versions(store: Store) -> list[tuple[str, ...]]:
    async with store.db.engine.connect() as connection:
        rows = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        return [tuple(row) for row in rows]


def head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "src/fap/server/store/migrations")
    revision = ScriptDirectory.from_config(config).get_current_head()
    assert revision is not None
    return revision


@both_backends
async def test_the_migrations_build_the_models_schema(store_url: str) -> None:
    store = await migrated(store_url)
    try:

        def differences(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with store.db.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await store.close()


@both_backends
async def test_migrating_again_changes_nothing(store_url: str) -> None:
    await (await migrated(store_url)).close()
    store = await migrated(store_url)
    try:
        async with store.db.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables >= TABLES
        assert await versions(store) == [(head(),)]
    finally:
        await store.close()


@both_backends
async def test_servers_starting_together_migrate_once(store_url: str) -> None:
    stores = [Store.connect(store_url) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        assert await versions(stores[0]) == [(head(),)]
    finally:
        for store in stores:
            await store.close()


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    store = await migrated(sqlite_url(tmp_path / "fap.db"))
    try:
        async with store.db.engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert mode == "wal"
        assert timeout is not None and int(timeout) >= 1000
    finally:
        await store.close()
