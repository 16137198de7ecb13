"""Server fixtures: the real app in-process, on a temporary data directory and a fake clock, with
its state on SQLite, or on PostgreSQL for the modules marked ``both_backends``."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.postgres import run
from tests.unit.server.harness import Server, running_server

from fap.server.services import DATABASE_FILE
from fap.server.store.database import Database
from fap.server.store.urls import sqlite_url


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The state store under test: SQLite unless the test is parametrized (``both_backends``)."""
    name: str = getattr(request, "param", "sqlite")
    return name


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str:
    """``--db`` for the backend: "" (SQLite in the data directory) or a fresh PostgreSQL database."""
    if backend == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return ""


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded store's file as the migrations leave it, made once per test process: each
    test's server starts on a copy and finds its schema current, as a restarted server does.
    (Migrating from nothing is the migration tests' own subject, and every e2e server's.)"""
    path = tmp_path_factory.mktemp("migrated") / DATABASE_FILE

    async def migrate() -> None:
        database = Database(sqlite_url(path))
        try:
            await database.migrate()
        finally:
            await database.dispose()  # the last connection's close folds the WAL into the file

    run(migrate())
    return path


@pytest.fixture
async def server(tmp_path: Path, db_url: str, migrated_sqlite: Path) -> AsyncIterator[Server]:
    data = tmp_path / "data"
    if not db_url:
        data.mkdir(mode=0o700)
        shutil.copyfile(migrated_sqlite, data / DATABASE_FILE)
        (data / DATABASE_FILE).chmod(0o600)
    async with running_server(data, db=db_url) as running:
        yield running
