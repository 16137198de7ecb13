"""Members of an organisation: their roles, invitations, changes of role, removal.

The rule that must hold across concurrent requests is checked inside the transaction that
changes it: an organisation always keeps an owner. Every change writes its audit event in the
same transaction (``audit.record``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fap.api import JobState, Transition, transition
from fap.api.roles import Role, role_named
from fap.server.errors import Conflict, NotFound
from fap.server.store.audit import Actor, Change, record
from fap.server.store.database import Database, update_rows
from fap.server.store.models import Invitation, Membership, Token, Upload, User
from fap.server.store.moves import in_source, moving
from fap.server.store.outages import retried

__all__ = ("MOVES", "Members")

# The move this module makes, checked against the state machine's table at import: a member
# removed leaves no unfinished work behind, whatever state it is in.
_LEFT = transition((JobState.PENDING, JobState.QUEUED, JobState.LEASED), JobState.FAILED)
MOVES: tuple[Transition, ...] = (_LEFT,)
_LEFT_ERROR = "Its uploader was removed from the organisation before it was analysed."


class Members:
    def __init__(self, db: Database) -> None:
        self._db = db

    @retried
    async def role_in(self, org_id: str, user_id: str) -> Role | None:
        async with self._db.read() as session:
            role = await session.scalar(
                select(Membership.role).where(
                    Membership.org_id == org_id, Membership.user_id == user_id
                )
            )
            return None if role is None else role_named(role)

    @retried
    async def members(self, org_id: str) -> list[tuple[User, Role]]:
        async with self._db.read() as session:
            rows = await session.execute(
                select(User, Membership.role)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.org_id == org_id)
                .order_by(User.email, User.name, User.id)
            )
            return [(user, role_named(role)) for user, role in rows]

    @retried
    async def invitations(self, org_id: str) -> Sequence[Invitation]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Invitation).where(Invitation.org_id == org_id).order_by(Invitation.email)
            )
            return list(rows)

    async def invite(self, org_id: str, email: str, role: Role, actor: Actor, now: float) -> None:
        """Whoever signs in with ``email`` joins with ``role``; Conflict if they are a member."""
        async with self._db.write() as session:
            member = await session.scalar(
                select(Membership.user_id)
                .join(User, User.id == Membership.user_id)
                .where(Membership.org_id == org_id, User.email == email)
            )
            if member is not None:
                raise Conflict(f"{email} is a member already; change their role instead.")
            await session.execute(
                delete(Invitation).where(Invitation.org_id == org_id, Invitation.email == email)
            )
            session.add(
                Invitation(
                    org_id=org_id, email=email, role=role, invited_by=actor.id, created_at=now
                )
            )
            record(session, org_id, actor, Change("member.invite", email, {"role": role}), now)

    async def cancel_invitation(self, org_id: str, email: str, actor: Actor, now: float) -> bool:
        async with self._db.write() as session:
            result = await session.execute(
                delete(Invitation).where(Invitation.org_id == org_id, Invitation.email == email)
            )
            gone = bool(getattr(result, "rowcount", 0))
            if gone:
                record(session, org_id, actor, Change("member.uninvite", email), now)
            return gone

    async def set_role(self, org_id: str, user: User, role: Role, actor: Actor, now: float) -> Role:
        """Give a member another role; answers their role before. The last owner stays one."""
        async with self._db.write() as session:
            before = await _locked_role(session, org_id, user.id)
            if before == "owner" and role != "owner":
                await _keep_an_owner(session, org_id, user)
            await session.execute(
                update(Membership)
                .where(Membership.org_id == org_id, Membership.user_id == user.id)
                .values(role=role)
            )
            change = Change("member.role", _shown(user), {"from": before, "to": role})
            record(session, org_id, actor, change, now)
            return before

    async def remove_member(
        self, org_id: str, user: User, actor: Actor, now: float
    ) -> tuple[int, list[str]]:
        """Remove the member: their API tokens in the organisation are revoked and their
        unfinished uploads there fail, so no new result is sealed to their devices; their
        sign-in sessions lose the organisation at once, since every request reads the
        membership. Answers how many tokens were revoked, and the uploads failed."""
        async with self._db.write() as session:
            if await _locked_role(session, org_id, user.id) == "owner":
                await _keep_an_owner(session, org_id, user)
            await session.execute(
                delete(Membership).where(Membership.org_id == org_id, Membership.user_id == user.id)
            )
            revoked = await update_rows(
                session,
                update(Token)
                .where(Token.org_id == org_id, Token.user_id == user.id, Token.revoked_at.is_(None))
                .values(revoked_at=now),
            )
            unfinished = select(Upload.id).where(
                Upload.org_id == org_id, Upload.user_id == user.id, in_source(_LEFT)
            )
            failed = list(await session.scalars(unfinished.with_for_update()))
            if failed:
                await session.execute(
                    moving(_LEFT)
                    .where(Upload.id.in_(failed))
                    .values(error=_LEFT_ERROR, finished_at=now, worker_id=None)
                )
            details = {"tokens_revoked": revoked, "uploads_failed": len(failed)}
            record(session, org_id, actor, Change("member.remove", _shown(user), details), now)
            return revoked, failed

    @retried
    async def member_named(self, org_id: str, who: str) -> User | None:
        """A member by user id or email (what ``fap user role|remove`` are given)."""
        async with self._db.read() as session:
            user: User | None = await session.scalar(
                select(User)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.org_id == org_id, (User.id == who) | (User.email == who.lower()))
            )
            return user


async def _locked_role(session: AsyncSession, org_id: str, user_id: str) -> Role:
    role = await session.scalar(
        select(Membership.role)
        .where(Membership.org_id == org_id, Membership.user_id == user_id)
        .with_for_update()
    )
    if role is None:
        raise NotFound("There is no such member in this organisation.")
    return role_named(role)


async def _keep_an_owner(session: AsyncSession, org_id: str, leaving: User) -> None:
    """Conflict unless another owner remains. The owners' rows are locked (PostgreSQL; SQLite
    writes one at a time), so two owners demoting each other at once cannot both succeed."""
    owners = await session.scalars(
        select(Membership.user_id)
        .where(Membership.org_id == org_id, Membership.role == "owner")
        .with_for_update()
    )
    if not any(owner != leaving.id for owner in owners):
        raise Conflict(
            f"{_shown(leaving)} is the organisation's only owner; make another member an owner "
            "first."
        )


def _shown(user: User) -> str:
    return user.email or user.name
