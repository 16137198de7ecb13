"""The audit log: who changed an organisation's access, what, when and from where.

Each event is written in the transaction of the change it records, so a change is never without
its event, nor an event without its change. Events name objects by id, email or name; a token or a
key never goes in (the details hold what the change set, and the routes give only safe values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fap.server.store.database import Database
from fap.server.store.ids import new_id
from fap.server.store.models import AuditEvent
from fap.server.store.outages import retried

__all__ = ("Actor", "Audit", "record")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a user (``id`` their user id) or the server itself (``id`` None)."""

    id: str | None
    label: str  # what the log shows: an email, a user's name, "server"
    remote: str | None = None  # the client's address, as the server saw it


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # dotted: "member.role", "token.create" …
    target: str
    details: dict[str, Any] = field(default_factory=dict)


def record(
    session: AsyncSession, org_id: str | None, actor: Actor, change: Change, now: float
) -> None:
    """Add the event to ``session``: it commits, or rolls back, with the change."""
    session.add(
        AuditEvent(
            id=new_id(),
            org_id=org_id,
            at=now,
            actor_id=actor.id,
            actor=actor.label,
            action=change.action,
            target=change.target,
            details=change.details,
            remote=actor.remote,
        )
    )


class Audit:
    def __init__(self, db: Database) -> None:
        self._db = db

    @retried
    async def events(
        self, org_id: str, limit: int, before: float | None = None
    ) -> Sequence[AuditEvent]:
        """The organisation's events, newest first."""
        query = select(AuditEvent).where(AuditEvent.org_id == org_id)
        if before is not None:
            query = query.where(AuditEvent.at < before)
        async with self._db.read() as session:
            rows = await session.scalars(
                query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
            )
            return list(rows)
