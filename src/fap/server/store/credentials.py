"""Bearer tokens and sign-in sessions: what a token's hash resolves to, and refresh rotation.

A sign-in session is a family of refresh tokens, each used once: using one yields the next (and a
new access token). A refresh token used a second time was copied, by a thief or by the user's own
lost answer; either way nobody can tell which holder is genuine, so the whole session ends, and
its access tokens with it. The use is a conditional UPDATE, so of two copies racing, one wins and
the other ends the session.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fap.server.store.audit import Actor, Change, record
from fap.server.store.database import Database, update_rows
from fap.server.store.ids import new_id
from fap.server.store.models import Membership, Org, RefreshToken, Session, Token, User
from fap.server.store.outages import retried

__all__ = ("Credential", "Credentials", "NewToken", "RefreshOutcome", "Refreshed")


@dataclass(frozen=True, slots=True)
class Credential:
    """A valid token: not revoked, not expired, of a session still open, of a live organisation.

    ``member_role`` is the user's role in the token's organisation (API tokens; None if they are
    no member any more); session tokens carry no organisation: the request names one.
    """

    kind: str  # "user" | "processor" | "session"
    token_id: str
    user: User | None
    org: Org | None
    role_cap: str | None
    member_role: str | None
    session_id: str | None


@dataclass(frozen=True, slots=True)
class NewToken:
    kind: str  # "user" (an API token) or "processor"
    org_id: str
    user_id: str | None
    name: str
    role: str | None  # the cap of an API token
    expires_at: float | None


class RefreshOutcome(enum.Enum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"
    ENDED = "ended"  # the session was revoked or is past its lifetime
    REUSED = "reused"  # used before: the session is revoked now


@dataclass(frozen=True, slots=True)
class Refreshed:
    outcome: RefreshOutcome
    session: Session | None = None


class Credentials:
    def __init__(self, db: Database) -> None:
        self._db = db

    @retried
    async def resolve(self, token_hash: str, now: float) -> Credential | None:
        """What the token is, in one statement; None if unknown, revoked or expired."""
        membership = and_(Membership.org_id == Token.org_id, Membership.user_id == Token.user_id)
        async with self._db.read() as session:
            row = (
                await session.execute(
                    select(Token, User, Org, Session, Membership.role)
                    .outerjoin(User, User.id == Token.user_id)
                    .outerjoin(Org, Org.id == Token.org_id)
                    .outerjoin(Session, Session.id == Token.session_id)
                    .outerjoin(Membership, membership)
                    .where(Token.hash == token_hash)
                )
            ).first()
        if row is None:
            return None
        token, user, org, sign_in, member_role = row
        if token.revoked_at is not None or (
            token.expires_at is not None and token.expires_at <= now
        ):
            return None
        if token.kind == "session":
            if user is None or sign_in is None or sign_in.revoked_at is not None:
                return None
            if sign_in.expires_at <= now:
                return None
        elif org is None or org.deleted_at is not None or (token.kind == "user" and user is None):
            return None
        assert token.id is not None  # every token has had one since migration 0005
        return Credential(
            token.kind, token.id, user, org, token.role, member_role, token.session_id
        )

    # -- API and processor tokens --------------------------------------------------------------

    async def create(self, token_hash: str, new: NewToken, actor: Actor, now: float) -> Token:
        token = Token(
            hash=token_hash,
            id=new_id(),
            kind=new.kind,
            org_id=new.org_id,
            user_id=new.user_id,
            name=new.name,
            role=new.role,
            created_at=now,
            created_by=actor.id,
            expires_at=new.expires_at,
        )
        async with self._db.write() as session:
            session.add(token)
            details = {"name": new.name, "role": new.role or new.kind, "expires_at": new.expires_at}
            record(session, new.org_id, actor, Change("token.create", token.id or "", details), now)
        return token

    @retried
    async def of_org(self, org_id: str) -> Sequence[Token]:
        """The organisation's API and processor tokens, revoked ones too, oldest first."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Token)
                .where(Token.org_id == org_id, Token.kind.in_(("user", "processor")))
                .order_by(Token.created_at, Token.id)
            )
            return list(rows)

    async def revoke(self, org_id: str, token_id: str, actor: Actor, now: float) -> bool:
        """Revoke one of the organisation's tokens; False if there is none such not revoked."""
        async with self._db.write() as session:
            revoked = await update_rows(
                session,
                update(Token)
                .where(Token.org_id == org_id, Token.id == token_id, Token.revoked_at.is_(None))
                .values(revoked_at=now),
            )
            if revoked:
                record(session, org_id, actor, Change("token.revoke", token_id), now)
            return bool(revoked)

    # -- sign-in sessions ----------------------------------------------------------------------

    async def start_session(
        self,
        user_id: str,
        issuer: str,
        access_hash: str,
        refresh_hash: str,
        access_expires: float,
        session_expires: float,
        now: float,
    ) -> Session:
        sign_in = Session(
            id=new_id(), user_id=user_id, issuer=issuer, created_at=now, expires_at=session_expires
        )
        async with self._db.write() as session:
            session.add(sign_in)
            await session.flush()
            session.add(RefreshToken(hash=refresh_hash, session_id=sign_in.id, created_at=now))
            session.add(_access_token(access_hash, sign_in, access_expires, now))
        return sign_in

    async def refresh(
        self, refresh_hash: str, access_hash: str, next_hash: str, access_expires: float, now: float
    ) -> Refreshed:
        """Exchange a refresh token for the next one and a new access token (see the module)."""
        async with self._db.write() as session:
            found = (
                await session.execute(
                    select(RefreshToken, Session)
                    .join(Session, Session.id == RefreshToken.session_id)
                    .where(RefreshToken.hash == refresh_hash)
                )
            ).first()
            if found is None:
                return Refreshed(RefreshOutcome.UNKNOWN)
            used, sign_in = found
            if sign_in.revoked_at is not None or sign_in.expires_at <= now:
                return Refreshed(RefreshOutcome.ENDED, sign_in)
            first_use = await update_rows(
                session,
                update(RefreshToken)
                .where(RefreshToken.hash == used.hash, RefreshToken.used_at.is_(None))
                .values(used_at=now),
            )
            if not first_use:
                await _end(session, sign_in.id, "a refresh token was used twice", now)
                return Refreshed(RefreshOutcome.REUSED, sign_in)
            session.add(RefreshToken(hash=next_hash, session_id=sign_in.id, created_at=now))
            session.add(_access_token(access_hash, sign_in, access_expires, now))
            return Refreshed(RefreshOutcome.ROTATED, sign_in)

    async def end_session(self, session_id: str, reason: str, now: float) -> None:
        async with self._db.write() as session:
            await _end(session, session_id, reason, now)

    async def end_sessions_of(self, user_id: str, reason: str, now: float) -> int:
        """End every open session of the user (the identity provider refused them, say)."""
        async with self._db.write() as session:
            ids = list(
                await session.scalars(
                    select(Session.id).where(
                        Session.user_id == user_id, Session.revoked_at.is_(None)
                    )
                )
            )
            for session_id in ids:
                await _end(session, session_id, reason, now)
            return len(ids)


def _access_token(token_hash: str, sign_in: Session, expires_at: float, now: float) -> Token:
    return Token(
        hash=token_hash,
        id=new_id(),
        kind="session",
        org_id=None,
        user_id=sign_in.user_id,
        created_at=now,
        expires_at=expires_at,
        session_id=sign_in.id,
    )


async def _end(session: AsyncSession, session_id: str, reason: str, now: float) -> None:
    await session.execute(
        update(Session)
        .where(Session.id == session_id, Session.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    await session.execute(
        update(Token)
        .where(Token.session_id == session_id, Token.revoked_at.is_(None))
        .values(revoked_at=now)
    )
