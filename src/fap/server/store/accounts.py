"""Organisations, users, tokens and devices."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fap.server.store.database import Database
from fap.server.store.ids import new_id
from fap.server.store.models import Device, Org, Token, User
from fap.server.store.outages import retried

__all__ = ("Accounts", "NewOrg", "TokenOwner")


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Whom a token speaks for: a user of an organisation, or a processor of one (``user`` None)."""

    kind: str
    org: Org
    user: User | None


@dataclass(frozen=True, slots=True)
class NewOrg:
    name: str
    default_engine: str
    max_file_size: int
    owner_name: str
    owner_token_hash: str
    processor_token_hash: str


class Accounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    @retried
    async def token_owner(self, token_hash: str) -> TokenOwner | None:
        async with self._db.read() as session:
            token = await session.get(Token, token_hash)
            if token is None:
                return None
            org = await session.get(Org, token.org_id)
            user = await session.get(User, token.user_id) if token.user_id else None
        if org is None or (token.kind == "user" and user is None):
            return None
        return TokenOwner(token.kind, org, user)

    async def create_org_once(
        self, new: NewOrg, now: float, before_commit: Callable[[], Awaitable[None]]
    ) -> bool:
        """Create the organisation, its owner and both tokens, unless it exists; True if created.

        ``before_commit`` runs inside the transaction (it writes the token files): when it fails,
        nothing is created, and the next start tries again. Of servers starting together on one
        database, one creates it; the others find it there, or lose the race on its unique name.
        """
        try:
            return await self._create_org(new, now, before_commit)
        except IntegrityError:
            async with self._db.read() as session:
                if await self._org_named(session, new.name) is not None:
                    return False
            raise

    async def _create_org(
        self, new: NewOrg, now: float, before_commit: Callable[[], Awaitable[None]]
    ) -> bool:
        async with self._db.write() as session:
            if await self._org_named(session, new.name) is not None:
                return False
            org = Org(
                id=new_id(),
                name=new.name,
                default_engine=new.default_engine,
                max_file_size=new.max_file_size,
                created_at=now,
            )
            owner = User(
                id=new_id(), org_id=org.id, name=new.owner_name, role="owner", created_at=now
            )
            session.add_all([org, owner])
            await session.flush()
            session.add_all(
                [
                    Token(
                        hash=new.owner_token_hash,
                        kind="user",
                        org_id=org.id,
                        user_id=owner.id,
                        created_at=now,
                    ),
                    Token(
                        hash=new.processor_token_hash,
                        kind="processor",
                        org_id=org.id,
                        user_id=None,
                        created_at=now,
                    ),
                ]
            )
            await session.flush()
            await before_commit()
        return True

    async def create_org(
        self, name: str, default_engine: str, max_file_size: int, now: float
    ) -> Org:
        org = Org(
            id=new_id(),
            name=name,
            default_engine=default_engine,
            max_file_size=max_file_size,
            created_at=now,
        )
        async with self._db.write() as session:
            session.add(org)
        return org

    async def create_user(self, org_id: str, name: str, role: str, now: float) -> User:
        user = User(id=new_id(), org_id=org_id, name=name, role=role, created_at=now)
        async with self._db.write() as session:
            session.add(user)
        return user

    async def add_token(
        self, token_hash: str, kind: str, org_id: str, user_id: str | None, now: float
    ) -> None:
        async with self._db.write() as session:
            session.add(
                Token(hash=token_hash, kind=kind, org_id=org_id, user_id=user_id, created_at=now)
            )

    async def register_device(
        self, user_id: str, name: str, recipient: str, now: float
    ) -> tuple[Device, bool]:
        """The user's device with this key, registered now unless it was already; True if new."""
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
        return device, device.id == device_id

    @retried
    async def recipients(self, user_id: str) -> list[str]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Device.recipient)
                .where(Device.user_id == user_id)
                .order_by(Device.created_at, Device.id)
            )
            return list(rows)

    @retried
    async def device_count(self, user_id: str) -> int:
        async with self._db.read() as session:
            count = await session.scalar(
                select(func.count()).select_from(Device).where(Device.user_id == user_id)
            )
            return count or 0

    @staticmethod
    async def _org_named(session: AsyncSession, name: str) -> Org | None:
        org: Org | None = await session.scalar(select(Org).where(Org.name == name))
        return org
