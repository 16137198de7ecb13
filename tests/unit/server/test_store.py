"""The state store: migrations build exactly the models' schema, and SQLite runs in WAL mode."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from fap.server.store import Store, sqlite_url
from fap.server.store.models import Base


async def migrated(path: Path) -> Store:
    store = Store.connect(sqlite_url(path))
    await store.open()
    return store


async def test_the_migrations_build_the_models_schema(tmp_path: Path) -> None:
    store = await migrated(tmp_path / "fap.db")
    try:

        def differences(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with store.db.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await store.close()


async def test_migrating_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "fap.db"
    await (await migrated(path)).close()
    store = await migrated(path)
    try:
        async with store.db.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            version = (
                await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            ).all()
        assert {"orgs", "users", "tokens", "devices", "uploads", "chunks", "workers"} <= tables
        assert version == [("0002",)]
    finally:
        await store.close()


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    store = await migrated(tmp_path / "fap.db")
    try:
        async with store.db.engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert mode == "wal"
        assert timeout is not None and int(timeout) >= 1000
    finally:
        await store.close()
