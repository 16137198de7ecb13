"""Users' devices: results are sealed to the age public key of each one not revoked.

A device belongs to its user, not to an organisation; each change is audited in every
organisation the user belongs to, since that is where uploads sealed to it come from.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fap.server.store.audit import Actor, Change, record
from fap.server.store.database import Database, update_rows
from fap.server.store.ids import new_id
from fap.server.store.models import Device, Membership
from fap.server.store.outages import retried

__all__ = ("Devices",)


class Devices:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(
        self, user_id: str, name: str, recipient: str, actor: Actor, now: float
    ) -> tuple[Device, bool]:
        """The user's device with this key, registered now unless it was already; True if new.
        A revoked key registered again stays revoked: revoking is for good."""
        device_id = new_id()
        async with self._db.write() as session:
            # One statement: the same key registered twice at once is registered once.
            await session.execute(
                self._db.insert(Device)
                .values(
                    id=device_id, user_id=user_id, name=name, recipient=recipient, created_at=now
                )
                .on_conflict_do_nothing(index_elements=[Device.user_id, Device.recipient])
            )
            device = await session.scalar(
                select(Device).where(Device.user_id == user_id, Device.recipient == recipient)
            )
            assert device is not None  # inserted now, or the conflicting row
            created = device.id == device_id
            if created:
                await _audit(
                    session, user_id, actor, Change("key.add", device.id, {"name": name}), now
                )
        return device, created

    @retried
    async def of(self, user_id: str) -> Sequence[Device]:
        """The user's devices, revoked ones too, oldest first."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Device)
                .where(Device.user_id == user_id)
                .order_by(Device.created_at, Device.id)
            )
            return list(rows)

    async def revoke(self, user_id: str, device_id: str, actor: Actor, now: float) -> bool:
        """Revoke one of the user's devices; False if it is not theirs or was revoked already."""
        async with self._db.write() as session:
            revoked = await update_rows(
                session,
                update(Device)
                .where(
                    Device.id == device_id, Device.user_id == user_id, Device.revoked_at.is_(None)
                )
                .values(revoked_at=now),
            )
            if revoked:
                await _audit(session, user_id, actor, Change("key.revoke", device_id), now)
            return bool(revoked)

    @retried
    async def recipients(self, user_id: str) -> list[str]:
        """The age public keys results of this user are sealed to: every active device's."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Device.recipient)
                .where(Device.user_id == user_id, Device.revoked_at.is_(None))
                .order_by(Device.created_at, Device.id)
            )
            return list(rows)

    @retried
    async def active_count(self, user_id: str) -> int:
        async with self._db.read() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Device)
                .where(Device.user_id == user_id, Device.revoked_at.is_(None))
            )
            return count or 0


async def _audit(
    session: AsyncSession, user_id: str, actor: Actor, change: Change, now: float
) -> None:
    orgs = await session.scalars(select(Membership.org_id).where(Membership.user_id == user_id))
    for org_id in orgs:
        record(session, org_id, actor, change, now)
