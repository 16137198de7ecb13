"""Alembic environment: the server hands it an open connection (``Database.migrate``).

Run by hand (``alembic -c …``), it reads ``sqlalchemy.url`` from the config instead, which is how a
new revision is generated against a scratch database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from fap.server.store.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters tables by copying them; batch mode lets one migration serve both stores.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("Set sqlalchemy.url (a synchronous URL) to run migrations by hand.")
    with create_engine(url).begin() as own:
        _run(own)


_main()
