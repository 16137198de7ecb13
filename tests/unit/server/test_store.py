"""The state store: the same migrations build exactly the models' schema on SQLite and PostgreSQL,
servers starting together migrate once, SQLite runs in WAL mode in private files, and no SQL
parameter is ever logged."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import IntegrityError
from tests.unit.server.harness import both_backends

from fap.server.store import (
    Actor,
    Identity,
    NewToken,
    Quotas,
    Store,
    sqlite_file,
    sqlite_url,
)
from fap.server.store.models import Base

TABLES = {"orgs", "users", "tokens", "devices", "uploads", "chunks", "workers"}


@pytest.fixture
def store_url(db_url: str, tmp_path: Path) -> str:
    return db_url or sqlite_url(tmp_path / "fap.db")


SOMEONE = Identity("https://idp.example", "subject-1", "someone@example.com", True, "Someone")


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


async def test_the_switch_to_wal_waits_for_a_writer_the_busy_timeout_does_not_cover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another connection holds the write lock of a database not yet in WAL mode (another server,
    # switching it): asking for WAL then is refused at once, busy timeout or not.
    path = tmp_path / "fap.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other_server (x)")
    writer.execute("BEGIN IMMEDIATE")
    refused = threading.Event()
    real_sleep = time.sleep

    def retry_after(seconds: float) -> None:
        refused.set()  # it was refused once and waits to try again: the writer may finish now
        real_sleep(seconds)

    monkeypatch.setattr(sqlite_file.time, "sleep", retry_after)
    switching = asyncio.create_task(asyncio.to_thread(sqlite_file.prepare_sqlite_file, path))
    waiting = asyncio.create_task(asyncio.to_thread(refused.wait, 10))
    try:
        await asyncio.wait([switching, waiting], return_when=asyncio.FIRST_COMPLETED)
        writer.execute("COMMIT")
        await switching  # without retries of its own: "database is locked"
    finally:
        refused.set()
        await waiting
        writer.close()
    store = await migrated(sqlite_url(path))
    try:
        async with store.db.engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        await store.close()


def modes(data: Path) -> dict[str, str]:
    return {file.name: oct(stat.S_IMODE(file.stat().st_mode)) for file in data.iterdir()}


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.usefixtures("permissive_umask")
async def test_the_sqlite_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = await migrated(sqlite_url(data / "fap.db"))
    try:
        # Written and still open: the -wal and -shm files exist beside the database.
        await store.accounts.sign_in(SOMEONE, None, 0.0)
        assert modes(data) == {name: "0o600" for name in ("fap.db", "fap.db-wal", "fap.db-shm")}
    finally:
        await store.close()


@pytest.mark.usefixtures("permissive_umask")
async def test_a_database_others_could_read_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    await (await migrated(sqlite_url(data / "fap.db"))).close()
    for file in data.iterdir():
        file.chmod(0o644)  # as an older fap left it
    store = await migrated(sqlite_url(data / "fap.db"))
    try:
        await store.accounts.sign_in(SOMEONE, None, 0.0)
        assert set(modes(data).values()) == {"0o600"}
    finally:
        await store.close()


@both_backends
async def test_sql_parameters_are_never_logged(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    store = await migrated(store_url)
    secret = "token-hash-that-must-not-be-logged"
    try:
        user = (await store.accounts.sign_in(SOMEONE, None, 0.0)).user
        org = await store.accounts.create_org(
            "private", "size@1", Quotas("team", 1, None, None), user, Actor(user.id, "x"), 0.0
        )
        token = NewToken("user", org.id, user.id, "ci", None, None)
        await store.credentials.create(secret, token, Actor(user.id, "x"), 0.0)
        with pytest.raises(IntegrityError) as refused:  # an error's message shows none either
            await store.credentials.create(secret, token, Actor(user.id, "x"), 0.0)
    finally:
        await store.close()
    assert "INSERT INTO tokens" in caplog.text  # the statements are logged, their values not
    assert secret not in caplog.text
    assert secret not in str(refused.value)
