"""Server fixtures: the real app in-process, on a temporary data directory and a fake clock, with
its state on SQLite, or on PostgreSQL for the modules marked ``both_backends``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.unit.server.harness import Server, running_server


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


@pytest.fixture
async def server(tmp_path: Path, db_url: str) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data", db=db_url) as running:
        yield running
