"""``--db``: the URLs users know from other tools, normalised to the async drivers the store runs
on; anything else is one sentence that repeats no password."""

from __future__ import annotations

from pathlib import Path

import pytest

from fap.errors import ConfigError
from fap.server.store import database_url, is_postgresql, libpq_dsn

DEFAULT = Path("/data/fap.db")


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("", "sqlite+aiosqlite:////data/fap.db"),
        ("sqlite:///state.db", "sqlite+aiosqlite:///state.db"),
        ("sqlite:////srv/fap/state.db", "sqlite+aiosqlite:////srv/fap/state.db"),
        ("sqlite+aiosqlite:////srv/s.db", "sqlite+aiosqlite:////srv/s.db"),
        ("postgresql://fap@db.internal/fap", "postgresql+asyncpg://fap@db.internal/fap"),
        ("postgres://fap:pw@db:6432/fap", "postgresql+asyncpg://fap:pw@db:6432/fap"),
        ("postgresql+asyncpg://fap@127.0.0.1/fap", "postgresql+asyncpg://fap@127.0.0.1/fap"),
    ],
)
def test_known_urls_are_normalised_to_the_async_drivers(given: str, used: str) -> None:
    assert database_url(given, DEFAULT) == used


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("mysql://root:hunter2@db/fap", "mysql://root:***@db/fap is not supported"),
        ("postgresql+psycopg://fap:hunter2@db/fap", "is not supported; use sqlite:///PATH"),
        ("postgresql://fap:hunter2@db", "names no database"),
        ("sqlite://", "names no database file"),
        ("not a url", "malformed"),
    ],
)
def test_anything_else_is_one_sentence_without_the_password(given: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        database_url(given, DEFAULT)
    message = str(refused.value)
    assert says in message
    assert "hunter2" not in message
    assert message.endswith(".")


def test_the_listen_connection_uses_the_plain_postgresql_url() -> None:
    url = database_url("postgres://fap:pw@db:6432/fap", DEFAULT)
    assert is_postgresql(url) and not is_postgresql(database_url("", DEFAULT))
    assert libpq_dsn(url) == "postgresql://fap:pw@db:6432/fap"
