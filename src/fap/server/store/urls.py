"""The ``--db`` setting: which database holds the state, as the URL of its async driver.

Users write the URLs they know from other tools (``postgresql://…``, ``sqlite:///PATH``); the store
runs on asyncpg and aiosqlite, so each is normalised to its async driver here, once.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from fap.errors import ConfigError

__all__ = ("database_url", "is_postgresql", "libpq_dsn", "sqlite_url")

_SUPPORTED = "sqlite:///PATH or postgresql+asyncpg://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
_POSTGRESQL = {"postgresql", "postgres"}


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def database_url(setting: str, default_sqlite: Path) -> str:
    """The async-driver URL for ``setting``; SQLite at ``default_sqlite`` when it is empty.

    Raises ConfigError for a URL fap cannot use, without repeating any password in it.
    """
    if not setting:
        return sqlite_url(default_sqlite)
    try:
        url = make_url(setting)
    except ArgumentError as error:
        raise ConfigError(f"The state store URL is malformed; use {_SUPPORTED}.") from error
    backend, _, driver = url.drivername.partition("+")
    shown = url.render_as_string(hide_password=True)
    if backend == "sqlite" and driver in ("", "aiosqlite"):
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                f"The state store {shown} names no database file; use sqlite:///PATH."
            )
        return _render(url.set(drivername="sqlite+aiosqlite"))
    if backend in _POSTGRESQL and driver in ("", "asyncpg"):
        if not url.database:
            raise ConfigError(f"The state store {shown} names no database; add /DATABASE.")
        return _render(url.set(drivername="postgresql+asyncpg"))
    raise ConfigError(f"The state store {shown} is not supported; use {_SUPPORTED}.")


def is_postgresql(url: str) -> bool:
    return make_url(url).get_backend_name() in _POSTGRESQL


def libpq_dsn(url: str) -> str:
    """The plain ``postgresql://`` form of a store URL, as asyncpg connects to it directly."""
    return _render(make_url(url).set(drivername="postgresql"))


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)
