"""Tables of the state store. Times are UNIX seconds (floats): portable and cheap to compare.

Alembic migrations (``migrations/versions``) create these tables; a test checks that the migrated
schema and these models agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fap.api import JobState

__all__ = (
    "AuditEvent",
    "Base",
    "Chunk",
    "Device",
    "Invitation",
    "JobStateColumn",
    "Membership",
    "Org",
    "OrgDomain",
    "OrgIssuer",
    "Pack",
    "RefreshToken",
    "SealedResultRow",
    "Session",
    "Token",
    "Upload",
    "User",
    "Worker",
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(32)


class JobStateColumn(TypeDecorator[JobState]):
    """A job state, stored as its value in a VARCHAR (what migration 0001 made) and read back as
    a :class:`JobState`: the drivers are handed plain strings, and a row holds the enum."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: JobState | None, dialect: Dialect) -> str | None:
        return None if value is None else JobState(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> JobState | None:
        return None if value is None else JobState(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Org(Base):
    __tablename__ = "orgs"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    default_engine: Mapped[str] = mapped_column(String(200))
    max_file_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)
    # The plan the quotas below came from (fap.server.auth.plans); None: organisations made before
    # plans existed, which have no quotas but the largest file.
    plan: Mapped[str | None] = mapped_column(String(32))
    max_bytes_per_month: Mapped[int | None] = mapped_column(BigInteger)
    max_concurrent_uploads: Mapped[int | None] = mapped_column(Integer)
    deleted_at: Mapped[float | None] = mapped_column(Float)


class User(Base):
    """A person: who an identity provider says they are (issuer and subject), or the local owner
    of the embedded default (no issuer). Their roles are in :class:`Membership`."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("org_id", "name"), UniqueConstraint("issuer", "subject"))

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    issuer: Mapped[str | None] = mapped_column(String(500))
    subject: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Float)
    # Before migration 0005 a user belonged to one organisation; no longer read nor written, and
    # dropped by a later release (expand, then contract).
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"))
    role: Mapped[str | None] = mapped_column(String(16))


class Membership(Base):
    """A user's role in an organisation."""

    __tablename__ = "memberships"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)


class Token(Base):
    """A bearer token, known only by the SHA-256 of its text.

    ``kind`` says whose: ``user`` (an API token: a user in ``org_id``, with the lesser of their role
    and ``role``), ``processor`` (leases jobs of ``org_id``), ``session`` (the short-lived access
    token of a sign-in ``session_id``; no organisation: it acts wherever its user is a member).
    """

    __tablename__ = "tokens"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # What lists and revocations name; never the token itself.
    id: Mapped[str | None] = mapped_column(String(32), index=True, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    org_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    session_id: Mapped[str | None] = mapped_column(String(32), index=True)


class Session(Base):
    """A sign-in: one family of refresh tokens, each used once, and their access tokens."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[float] = mapped_column(Float)
    # However often it is refreshed, a session ends here: then its user signs in again.
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    revoked_reason: Mapped[str | None] = mapped_column(String(200))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    # Set when it was exchanged for the next one: a second use is a stolen copy's.
    used_at: Mapped[float | None] = mapped_column(Float)


class Invitation(Base):
    """Whoever signs in with this (verified) email becomes a member with this role."""

    __tablename__ = "invitations"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    invited_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)


class OrgDomain(Base):
    """Whoever signs in with a verified email of this domain joins with this role."""

    __tablename__ = "org_domains"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))


class OrgIssuer(Base):
    """An identity provider the organisation trusts for joining; none listed: every one the
    server trusts."""

    __tablename__ = "org_issuers"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)


class AuditEvent(Base):
    """A change to an organisation's access, kept for its owners and admins. Never a secret."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "org_id", "at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
    actor_id: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(400))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(400))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    remote: Mapped[str | None] = mapped_column(String(64))


class Device(Base):
    """A user's device: results are sealed to the age public key of each."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("user_id", "recipient"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200))
    recipient: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    # A revoked device gets no new results.
    revoked_at: Mapped[float | None] = mapped_column(Float)


class Upload(Base):
    """An upload and its analysis job: one row, since each upload is analysed exactly once."""

    __tablename__ = "uploads"
    __table_args__ = (
        # Leasing: the oldest queued job of an organisation whose engine a worker runs.
        Index(None, "org_id", "state", "engine", "created_at"),
        # A user's uploads, newest first.
        Index(None, "user_id", "created_at"),
        # The sweeper: leases whose deadline passed.
        Index(None, "state", "lease_expires"),
        # The clean-up (migration 0002): finished uploads whose chunks or results are still stored.
        Index(None, "chunks_deleted_at", "finished_at"),
        Index(None, "expired_at", "finished_at"),
        # NULLs are distinct in a unique index (SQLite and PostgreSQL): only ids that were sent
        # must be unique, per user.
        Index(None, "user_id", "request_id", unique=True),
        # Dedup (migration 0007): a user's earlier uploads of the same content.
        Index(None, "user_id", "sha256"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    engine: Mapped[str] = mapped_column(String(200))
    chunk_size: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[JobState] = mapped_column(JobStateColumn)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lapses: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires: Mapped[float | None] = mapped_column(Float)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    result_size: Mapped[int | None] = mapped_column(BigInteger)
    result_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    queued_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    # When the clean-up deleted the chunk blobs of the finished upload (see server/cleanup.py).
    chunks_deleted_at: Mapped[float | None] = mapped_column(Float)
    # When the clean-up deleted every blob of the upload, its result too: past --keep-results.
    expired_at: Mapped[float | None] = mapped_column(Float)
    request_id: Mapped[str | None] = mapped_column(String(64))
    lease_request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # What the engine used on the job's last attempt, as its processor measured it (migration
    # 0006); None before that, or from a processor that did not say.
    engine_cpu_seconds: Mapped[float | None] = mapped_column(Float)
    engine_peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    engine_wall_seconds: Mapped[float | None] = mapped_column(Float)
    # The SHA-256 of the sorted age recipients the job's last lease handed out (migration 0007):
    # its result is sealed to those, so it answers a new upload of the same file only while the
    # uploader's active devices are still exactly these. None: leased before, or never leased.
    recipients_sha256: Mapped[str | None] = mapped_column(String(64))


class SealedResultRow(Base):
    """A sealed result the server keeps itself (migration 0009): one that came with its job's
    completion (at most MAX_INLINE_RESULT bytes), written in the transaction that recorded the
    job done. Waits hand it out inline, with no object of its own in the blob store; where a URL
    is asked for (an older client), it is copied to the job's result key first. Deleted with
    the upload's other results, past ``keep_results``."""

    __tablename__ = "sealed_results"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class Chunk(Base):
    """A chunk the client reported stored; the blob lives at ``uploads/{id}/chunks/{seq:08d}``,
    or (``pack_id`` set) it is ``stored_size`` bytes from ``pack_offset`` of ``packs/{pack_id}``."""

    __tablename__ = "chunks"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    raw_size: Mapped[int] = mapped_column(BigInteger)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    codec: Mapped[str] = mapped_column(String(8))
    sha256: Mapped[str] = mapped_column(String(64))
    stored_at: Mapped[float] = mapped_column(Float)
    # Migration 0008. No foreign key: the column is added in place, and the report that sets it
    # checked the pack (the caller's own, stored, holding the range).
    pack_id: Mapped[str | None] = mapped_column(ID, index=True)
    pack_offset: Mapped[int | None] = mapped_column(BigInteger)


class Pack(Base):
    """One object holding the chunks of a batch of small files end to end, at ``packs/{id}``:
    PUT once by their uploader, read a chunk at a time by processors (migration 0008). The
    clean-up deletes it once no chunk in it is needed any more (see server/cleanup.py)."""

    __tablename__ = "packs"
    __table_args__ = (
        # The clean-up: packs not deleted yet, oldest first.
        Index(None, "deleted_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    deleted_at: Mapped[float | None] = mapped_column(Float)


class Worker(Base):
    """A processor seen asking for work; ``status`` lists those seen lately."""

    __tablename__ = "workers"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    engines: Mapped[list[Any]] = mapped_column(JSON)
    last_seen: Mapped[float] = mapped_column(Float)
