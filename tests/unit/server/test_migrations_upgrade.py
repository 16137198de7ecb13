"""Upgrading keeps every row: a database made at each earlier schema revision, holding what a
server of that revision writes, is migrated to the head on SQLite and on PostgreSQL, and every row
and value is still there, in the shape the head keeps it (users of one organisation became
memberships in 0005, tokens got ids).

Each test lives the database's life up to its revision: it is migrated to each revision in turn
and, at each one, filled with rows in that revision's tables (raw SQL, as a server of that release
wrote them); then it is migrated to the head and every step's rows are checked. A new revision
needs its own step here as soon as a newer one follows it: the test fails until it has one.

A model change without a migration fails CI too: ``test_store.py``'s
``test_the_migrations_build_the_models_schema`` compares the migrated schema with the models, and
the last test here shows that the comparison notices a column the migrations lack.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, MetaData, String, text
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.unit.server.harness import BACKENDS

import fap.server.store
from fap.server.store import Database, Store, sqlite_url
from fap.server.store.models import Base

MIGRATIONS = Path(fap.server.store.__file__).parent / "migrations"
T = 1_790_000_000.5  # a time every row is written around; exact in binary floating point
SHA = "ab" * 32


def revisions() -> list[str]:
    """Every revision, oldest first."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


HEAD = revisions()[-1]


# -- what a server of each revision writes, and what must be left of it at the head ---------------

Rows = list[dict[str, Any]]


async def insert(connection: AsyncConnection, table: str, rows: Rows) -> None:
    columns = list(rows[0])
    names = ", ".join(columns)
    values = ", ".join(f":{column}" for column in columns)
    statement = f"INSERT INTO {table} ({names}) VALUES ({values})"  # noqa: S608 (our names)
    await connection.execute(text(statement), rows)


async def select(connection: AsyncConnection, query: str, **params: Any) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in await connection.execute(text(query), params)}


ORGS_0001: Rows = [
    {"id": "org-acme", "name": "acme", "default_engine": "size@1", "max_file_size": 1 << 40,
     "created_at": T},
    {"id": "org-globex", "name": "globex", "default_engine": "size@2", "max_file_size": 2000,
     "created_at": T + 1},
]  # fmt: skip
USERS_0001: Rows = [
    {"id": "user-ada", "org_id": "org-acme", "name": "ada", "role": "owner", "created_at": T},
    {"id": "user-bob", "org_id": "org-acme", "name": "bob", "role": "member", "created_at": T + 2},
    {"id": "user-cy", "org_id": "org-globex", "name": "cy", "role": "admin", "created_at": T + 3},
]
TOKENS_0001: Rows = [
    {"hash": "1" * 64, "kind": "user", "org_id": "org-acme", "user_id": "user-ada",
     "created_at": T},
    {"hash": "2" * 64, "kind": "processor", "org_id": "org-acme", "user_id": None,
     "created_at": T + 1},
]  # fmt: skip
DEVICES_0001: Rows = [
    {"id": "dev-ada", "user_id": "user-ada", "name": "laptop", "recipient": "age1" + "q" * 58,
     "created_at": T},
]  # fmt: skip
_UPLOAD: dict[str, Any] = {
    "org_id": "org-acme", "user_id": "user-ada", "size": 10, "sha256": SHA, "engine": "size@1",
    "chunk_size": 8, "chunk_count": 2, "attempts": 1, "lapses": 0, "lease_token": None,
    "lease_expires": None, "worker_id": None, "error": None, "result_size": None,
    "result_sha256": None, "created_at": T, "queued_at": T + 1, "finished_at": None,
}  # fmt: skip
UPLOADS_0001: Rows = [
    {**_UPLOAD, "id": "up-done", "name": "report.csv", "state": "done", "result_size": 321,
     "result_sha256": "cd" * 32, "finished_at": T + 9},
    {**_UPLOAD, "id": "up-leased", "name": "résumé – Grüße.txt", "state": "leased",
     "attempts": 2, "lapses": 1, "lease_token": "lease-" + "x" * 20, "lease_expires": T + 30,
     "worker_id": "w1", "error": "The processor stopped answering (lease lapsed)."},
    {**_UPLOAD, "id": "up-queued", "org_id": "org-globex", "user_id": "user-cy", "name": "b.bin",
     "engine": "size@2", "state": "queued", "attempts": 0},
]  # fmt: skip
CHUNKS_0001: Rows = [
    {"upload_id": "up-done", "seq": 0, "raw_size": 8, "stored_size": 9, "codec": "zstd",
     "sha256": SHA, "stored_at": T + 1},
    {"upload_id": "up-done", "seq": 1, "raw_size": 2, "stored_size": 2, "codec": "raw",
     "sha256": SHA, "stored_at": T + 2},
]  # fmt: skip
WORKERS_0001: Rows = [
    {"org_id": "org-acme", "worker_id": "w1", "engines": json.dumps(["size@1", "magic@2"]),
     "last_seen": T + 5},
]  # fmt: skip


async def fill_0001(connection: AsyncConnection) -> None:
    for table, rows in (
        ("orgs", ORGS_0001),
        ("users", USERS_0001),
        ("tokens", TOKENS_0001),
        ("devices", DEVICES_0001),
        ("uploads", UPLOADS_0001),
        ("chunks", CHUNKS_0001),
        ("workers", WORKERS_0001),
    ):
        await insert(connection, table, rows)


async def memberships_of(store: Store, user_id: str) -> list[tuple[str, str]]:
    """What the server itself reads of a user's organisations."""
    return [(org.name, role) for org, role in await store.accounts.orgs_of(user_id)]


def _values(rows: Rows, columns: list[str]) -> set[tuple[Any, ...]]:
    return {tuple(row[column] for column in columns) for row in rows}


async def check_0001(connection: AsyncConnection, store: Store) -> None:
    def columns(rows: Rows) -> list[str]:
        return list(rows[0])

    for table, rows in (
        ("orgs", ORGS_0001),
        ("devices", DEVICES_0001),
        ("uploads", UPLOADS_0001),
        ("chunks", CHUNKS_0001),
    ):
        names = columns(rows)
        found = await select(connection, f"SELECT {', '.join(names)} FROM {table}")  # noqa: S608 (our names)
        assert _values(rows, names) <= found, table
    # A user was one row per organisation; now each such row is a person with a membership.
    users = await select(connection, "SELECT id, name, created_at FROM users")
    assert _values(USERS_0001, ["id", "name", "created_at"]) <= users
    memberships = await select(
        connection, "SELECT org_id, user_id, role, created_at FROM memberships"
    )
    assert {(u["org_id"], u["id"], u["role"], u["created_at"]) for u in USERS_0001} <= memberships
    assert await memberships_of(store, "user-bob") == [("acme", "member")]
    # Tokens keep their hash, kind, organisation and user, and got an id each.
    names = columns(TOKENS_0001)
    tokens = await select(connection, f"SELECT {', '.join(names)} FROM tokens")  # noqa: S608 (our names)
    assert _values(TOKENS_0001, names) <= tokens
    hashes = tuple(token["hash"] for token in TOKENS_0001)
    ids = await select(
        connection, "SELECT id FROM tokens WHERE hash IN (:a, :b)", a=hashes[0], b=hashes[1]
    )
    assert len(ids) == 2 and all(token_id is not None for (token_id,) in ids)
    # A JSON column: text on SQLite, decoded by the driver on PostgreSQL.
    workers = await connection.execute(
        text("SELECT org_id, worker_id, engines, last_seen FROM workers")
    )
    decoded = [(o, w, json.loads(e) if isinstance(e, str) else e, s) for o, w, e, s in workers]
    assert ("org-acme", "w1", ["size@1", "magic@2"], T + 5) in decoded


async def fill_0002(connection: AsyncConnection) -> None:
    await connection.execute(
        text("UPDATE uploads SET chunks_deleted_at = :at, expired_at = :gone WHERE id = 'up-done'"),
        {"at": T + 100, "gone": T + 200},
    )


async def check_0002(connection: AsyncConnection, store: Store) -> None:
    found = await select(
        connection, "SELECT chunks_deleted_at, expired_at FROM uploads WHERE id = 'up-done'"
    )
    assert found == {(T + 100, T + 200)}


async def fill_0003(connection: AsyncConnection) -> None:
    await connection.execute(text("UPDATE uploads SET request_id = 'req-1' WHERE id = 'up-queued'"))


async def check_0003(connection: AsyncConnection, store: Store) -> None:
    found = await select(
        connection, "SELECT id, request_id FROM uploads WHERE request_id IS NOT NULL"
    )
    assert ("up-queued", "req-1") in found


async def fill_0004(connection: AsyncConnection) -> None:
    await connection.execute(
        text("UPDATE uploads SET lease_request_id = 'lease-req-1' WHERE id = 'up-leased'")
    )


async def check_0004(connection: AsyncConnection, store: Store) -> None:
    found = await select(connection, "SELECT lease_request_id FROM uploads WHERE id = 'up-leased'")
    assert found == {("lease-req-1",)}


ISSUER = "https://idp.example"
USERS_0005: Rows = [
    {"id": "user-dee", "org_id": None, "name": "Dee", "role": None, "email": "dee@globex.example",
     "issuer": ISSUER, "subject": "sub-dee", "created_at": T + 10},
]  # fmt: skip
MEMBERSHIPS_0005: Rows = [
    {"org_id": "org-globex", "user_id": "user-dee", "role": "viewer", "created_at": T + 10},
]
TOKENS_0005: Rows = [
    {"hash": "3" * 64, "id": "tok-dee", "kind": "user", "org_id": "org-globex",
     "user_id": "user-dee", "name": "ci", "role": "viewer", "created_at": T + 11,
     "created_by": "user-dee", "expires_at": T + 1000, "revoked_at": None, "session_id": None},
    {"hash": "4" * 64, "id": "tok-ses", "kind": "session", "org_id": None, "user_id": "user-dee",
     "name": None, "role": None, "created_at": T + 12, "created_by": None,
     "expires_at": T + 900, "revoked_at": None, "session_id": "ses-dee"},
]  # fmt: skip
SESSIONS_0005: Rows = [
    {"id": "ses-dee", "user_id": "user-dee", "issuer": ISSUER, "created_at": T + 12,
     "expires_at": T + 86400, "revoked_at": None, "revoked_reason": None},
]  # fmt: skip
REFRESH_0005: Rows = [
    {"hash": "5" * 64, "session_id": "ses-dee", "created_at": T + 12, "used_at": None},
]
INVITATIONS_0005: Rows = [
    {"org_id": "org-acme", "email": "eve@acme.example", "role": "member",
     "invited_by": "user-ada", "created_at": T + 13},
]  # fmt: skip
DOMAINS_0005: Rows = [{"org_id": "org-acme", "domain": "acme.example", "role": "viewer"}]
ISSUERS_0005: Rows = [{"org_id": "org-acme", "issuer": ISSUER}]
AUDIT_0005: Rows = [
    {"id": "ev-1", "org_id": "org-acme", "at": T + 14, "actor_id": "user-ada", "actor": "ada",
     "action": "member.invite", "target": "eve@acme.example",
     "details": json.dumps({"role": "member"}), "remote": "127.0.0.1"},
]  # fmt: skip


async def fill_0005(connection: AsyncConnection) -> None:
    await connection.execute(
        text(
            "UPDATE orgs SET plan = 'team', max_bytes_per_month = :month, "
            "max_concurrent_uploads = 5 WHERE id = 'org-acme'"
        ),
        {"month": 1 << 41},
    )
    await connection.execute(text("UPDATE devices SET revoked_at = :at"), {"at": T + 15})
    for table, rows in (
        ("users", USERS_0005),
        ("memberships", MEMBERSHIPS_0005),
        ("sessions", SESSIONS_0005),
        ("tokens", TOKENS_0005),
        ("refresh_tokens", REFRESH_0005),
        ("invitations", INVITATIONS_0005),
        ("org_domains", DOMAINS_0005),
        ("org_issuers", ISSUERS_0005),
        ("audit_events", AUDIT_0005),
    ):
        await insert(connection, table, rows)


async def check_0005(connection: AsyncConnection, store: Store) -> None:
    plans = await select(
        connection,
        "SELECT plan, max_bytes_per_month, max_concurrent_uploads FROM orgs WHERE id = 'org-acme'",
    )
    assert plans == {("team", 1 << 41, 5)}
    assert await select(connection, "SELECT revoked_at FROM devices") == {(T + 15,)}
    for table, rows in (
        (
            "users",
            [{k: v for k, v in row.items() if k not in ("org_id", "role")} for row in USERS_0005],
        ),
        ("memberships", MEMBERSHIPS_0005),
        ("sessions", SESSIONS_0005),
        ("tokens", TOKENS_0005),
        ("refresh_tokens", REFRESH_0005),
        ("invitations", INVITATIONS_0005),
        ("org_domains", DOMAINS_0005),
        ("org_issuers", ISSUERS_0005),
    ):
        names = list(rows[0])
        found = await select(connection, f"SELECT {', '.join(names)} FROM {table}")  # noqa: S608 (our names)
        assert _values(rows, names) <= found, table
    events = await store.audit.events("org-acme", 10)
    assert [(e.action, e.target, e.details, e.remote) for e in events] == [
        ("member.invite", "eve@acme.example", {"role": "member"}, "127.0.0.1")
    ]
    assert await memberships_of(store, "user-dee") == [("globex", "viewer")]


async def fill_0006(connection: AsyncConnection) -> None:
    await connection.execute(
        text(
            "UPDATE uploads SET engine_cpu_seconds = 1.5, engine_peak_memory_bytes = :memory, "
            "engine_wall_seconds = 2.25 WHERE id = 'up-done'"
        ),
        {"memory": 3 << 30},
    )


async def check_0006(connection: AsyncConnection, store: Store) -> None:
    found = await select(
        connection,
        "SELECT engine_cpu_seconds, engine_peak_memory_bytes, engine_wall_seconds FROM uploads "
        "WHERE id = 'up-done'",
    )
    assert found == {(1.5, 3 << 30, 2.25)}


async def fill_0007(connection: AsyncConnection) -> None:
    await connection.execute(
        text("UPDATE uploads SET recipients_sha256 = :digest WHERE id = 'up-done'"),
        {"digest": "ef" * 32},
    )


async def check_0007(connection: AsyncConnection, store: Store) -> None:
    found = await select(connection, "SELECT id, recipients_sha256 FROM uploads")
    # Jobs leased before 0007 have no digest: their results answer no later upload (dedup).
    assert ("up-done", "ef" * 32) in found
    assert ("up-leased", None) in found


PACKS_0008: Rows = [
    {"id": "pack-1", "org_id": "org-acme", "user_id": "user-ada", "size": 11, "sha256": SHA,
     "created_at": T + 7, "deleted_at": None},
]  # fmt: skip


async def fill_0008(connection: AsyncConnection) -> None:
    await insert(connection, "packs", PACKS_0008)
    await connection.execute(
        text(
            "UPDATE chunks SET pack_id = 'pack-1', pack_offset = 2 "
            "WHERE upload_id = 'up-done' AND seq = 0"
        )
    )


async def check_0008(connection: AsyncConnection, store: Store) -> None:
    packs = await select(connection, "SELECT id, size, deleted_at FROM packs")
    assert packs == {("pack-1", 11, None)}
    chunks = await select(connection, "SELECT upload_id, seq, pack_id, pack_offset FROM chunks")
    # Chunks recorded before packs are objects of their own.
    assert {("up-done", 0, "pack-1", 2), ("up-done", 1, None, None)} <= chunks


async def fill_0009(connection: AsyncConnection) -> None:
    await insert(connection, "sealed_results", [{"upload_id": "up-done", "sealed": b"\x00age\xff"}])


async def check_0009(connection: AsyncConnection, store: Store) -> None:
    found = await select(connection, "SELECT upload_id, sealed FROM sealed_results")
    assert found == {("up-done", b"\x00age\xff")}  # bytes as they were, a NUL and all


@dataclass(frozen=True)
class Step:
    """What a server of one revision writes, and what of it the head must still hold."""

    fill: Callable[[AsyncConnection], Awaitable[None]]
    check: Callable[[AsyncConnection, Store], Awaitable[None]]


STEPS: dict[str, Step] = {
    "0001": Step(fill_0001, check_0001),
    "0002": Step(fill_0002, check_0002),
    "0003": Step(fill_0003, check_0003),
    "0004": Step(fill_0004, check_0004),
    "0005": Step(fill_0005, check_0005),
    "0006": Step(fill_0006, check_0006),
    "0007": Step(fill_0007, check_0007),
    "0008": Step(fill_0008, check_0008),
    "0009": Step(fill_0009, check_0009),
}

# Every earlier revision; the head too while it has a step (so the steps are tried on the head's
# tables before a newer revision makes it an earlier one).
STARTS = [revision for revision in revisions() if revision != HEAD or revision in STEPS]


# -- the test -------------------------------------------------------------------------------------


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if backend == "postgresql":
        yield request.getfixturevalue("pg_url")
    else:
        yield sqlite_url(tmp_path / "fap.db")


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("start", STARTS)
async def test_a_database_made_at_an_earlier_revision_keeps_every_row_at_the_head(
    url: str, start: str
) -> None:
    lived = revisions()[: revisions().index(start) + 1]
    missing = [revision for revision in lived if revision not in STEPS]
    assert not missing, (
        f"Revisions {', '.join(missing)} have no step in {Path(__file__).name}: add what a "
        "server of each writes, and what must be left of it at the head."
    )
    db = Database(url)
    try:
        for revision in lived:
            await db.migrate(revision)
            async with db.engine.begin() as connection:
                await STEPS[revision].fill(connection)
    finally:
        await db.dispose()

    store = Store.connect(url)
    await store.open()  # migrates to the head, as a server of this release starting up does
    try:
        async with store.db.engine.connect() as connection:
            version = await select(connection, "SELECT version_num FROM alembic_version")
            assert version == {(HEAD,)}
            for revision in lived:
                await STEPS[revision].check(connection, store)
    finally:
        await store.close()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_a_model_change_without_its_migration_is_noticed(url: str) -> None:
    store = Store.connect(url)
    await store.open()
    # The models with one column more, which no migration adds.
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["orgs"].append_column(Column("motto", String(100), nullable=True))
    try:

        def differences(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, changed))

        async with store.db.engine.connect() as connection:
            found = await connection.run_sync(differences)
    finally:
        await store.close()
    assert [(d[0], d[2], d[3].name) for d in found] == [("add_column", "orgs", "motto")]
