"""Organisations, who may join them by signing in, and the people who sign in.

An organisation's name is unique: its index decides a race between two creations. Every change
writes its audit event in the same transaction (``audit.record``); members are in ``members.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fap.api.roles import Role, role_named
from fap.server.errors import Conflict, NotFound
from fap.server.store.audit import Actor, Change, record
from fap.server.store.database import Database, update_rows
from fap.server.store.ids import new_id
from fap.server.store.models import (
    Invitation,
    Membership,
    Org,
    OrgDomain,
    OrgIssuer,
    Token,
    User,
)
from fap.server.store.outages import retried

__all__ = ("Accounts", "Identity", "NewOrg", "OrgAccess", "Quotas", "SignedIn", "org_quotas")


@dataclass(frozen=True, slots=True)
class Quotas:
    """An organisation's limits (None: no limit), from its plan."""

    plan: str
    max_file_size: int
    max_bytes_per_month: int | None
    max_concurrent_uploads: int | None


def org_quotas(org: Org) -> Quotas:
    """The quotas the organisation's row holds (set from its plan when it was made)."""
    return Quotas(
        org.plan or "none",
        org.max_file_size,
        org.max_bytes_per_month,
        org.max_concurrent_uploads,
    )


@dataclass(frozen=True, slots=True)
class NewOrg:
    """The embedded default's organisation, its owner and the two tokens written to disk."""

    name: str
    default_engine: str
    quotas: Quotas
    owner_name: str
    owner_token_hash: str
    processor_token_hash: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who an identity provider says signed in (a verified ID token)."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    # The configured issuers that vouch for ``issuer`` (a Microsoft tenant's, for one), which
    # organisations may list instead of it.
    vouched_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    joined: tuple[tuple[str, Role], ...]  # organisations (names) joined by this sign-in


@dataclass(frozen=True, slots=True)
class OrgAccess:
    """Who may join an organisation by signing in."""

    issuers: tuple[str, ...]  # none: any issuer the server trusts
    domains: tuple[tuple[str, Role], ...]  # email domain, the role it joins with


class Accounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- organisations -------------------------------------------------------------------------

    async def create_org_once(
        self, new: NewOrg, now: float, before_commit: Callable[[], Awaitable[None]]
    ) -> bool:
        """Create the organisation, its owner and both tokens, unless it exists; True if created.

        ``before_commit`` runs inside the transaction (it writes the token files): when it fails,
        nothing is created, and the next start tries again. Of servers starting together on one
        database, one creates it; the others find it there, or lose the race on its unique name.
        """
        try:
            async with self._db.write() as session:
                if await _org_named(session, new.name) is not None:
                    return False
                org = _new_org(new.name, new.default_engine, new.quotas, now)
                owner = User(id=new_id(), name=new.owner_name, created_at=now)
                session.add_all([org, owner])
                await session.flush()
                session.add(
                    Membership(org_id=org.id, user_id=owner.id, role="owner", created_at=now)
                )
                for token_hash, kind, user_id in (
                    (new.owner_token_hash, "user", owner.id),
                    (new.processor_token_hash, "processor", None),
                ):
                    session.add(
                        Token(
                            hash=token_hash,
                            id=new_id(),
                            kind=kind,
                            org_id=org.id,
                            user_id=user_id,
                            name="local bootstrap",
                            created_at=now,
                        )
                    )
                actor = Actor(None, "server")
                record(session, org.id, actor, Change("org.create", org.name), now)
                await session.flush()
                await before_commit()
            return True
        except IntegrityError:
            async with self._db.read() as session:
                if await _org_named(session, new.name) is not None:
                    return False
            raise

    async def create_org(
        self, name: str, default_engine: str, quotas: Quotas, owner: User, actor: Actor, now: float
    ) -> Org:
        """A new organisation with ``owner`` as its owner; Conflict if the name is taken."""
        org = _new_org(name, default_engine, quotas, now)
        try:
            async with self._db.write() as session:
                if await _org_named(session, name, deleted_too=True) is not None:
                    raise _name_taken(name)
                session.add(org)
                await session.flush()
                session.add(
                    Membership(org_id=org.id, user_id=owner.id, role="owner", created_at=now)
                )
                record(
                    session, org.id, actor, Change("org.create", name, {"plan": quotas.plan}), now
                )
        except IntegrityError:
            raise _name_taken(name) from None
        return org

    @retried
    async def org_named(self, name: str) -> Org | None:
        async with self._db.read() as session:
            return await _org_named(session, name)

    @retried
    async def orgs_of(self, user_id: str) -> list[tuple[Org, Role]]:
        """The organisations the user belongs to, with their role in each, by name."""
        async with self._db.read() as session:
            rows = await session.execute(
                select(Org, Membership.role)
                .join(Membership, Membership.org_id == Org.id)
                .where(Membership.user_id == user_id, Org.deleted_at.is_(None))
                .order_by(Org.name)
            )
            return [(org, role_named(role)) for org, role in rows]

    async def delete_org(self, org: Org, actor: Actor, now: float) -> None:
        """Mark it deleted: its members, invitations and joining rules go, its tokens are revoked.
        Its name stays taken, so nobody else can claim what its old tokens and links named."""
        async with self._db.write() as session:
            changed = await update_rows(
                session,
                update(Org)
                .where(Org.id == org.id, Org.deleted_at.is_(None))
                .values(deleted_at=now),
            )
            if not changed:
                raise NotFound(f"There is no organisation {org.name!r}.")
            for model in (Membership, Invitation, OrgDomain, OrgIssuer):
                await session.execute(delete(model).where(model.org_id == org.id))
            await session.execute(
                update(Token)
                .where(Token.org_id == org.id, Token.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            record(session, org.id, actor, Change("org.delete", org.name), now)

    @retried
    async def access_of(self, org_id: str) -> OrgAccess:
        async with self._db.read() as session:
            issuers = await session.scalars(
                select(OrgIssuer.issuer)
                .where(OrgIssuer.org_id == org_id)
                .order_by(OrgIssuer.issuer)
            )
            domains = await session.execute(
                select(OrgDomain.domain, OrgDomain.role)
                .where(OrgDomain.org_id == org_id)
                .order_by(OrgDomain.domain)
            )
            return OrgAccess(
                tuple(issuers), tuple((domain, role_named(role)) for domain, role in domains)
            )

    async def set_access(self, org_id: str, access: OrgAccess, actor: Actor, now: float) -> None:
        """Replace who may join by signing in: the trusted issuers and the joining domains."""
        async with self._db.write() as session:
            await session.execute(delete(OrgIssuer).where(OrgIssuer.org_id == org_id))
            await session.execute(delete(OrgDomain).where(OrgDomain.org_id == org_id))
            session.add_all(OrgIssuer(org_id=org_id, issuer=issuer) for issuer in access.issuers)
            session.add_all(
                OrgDomain(org_id=org_id, domain=domain, role=role)
                for domain, role in access.domains
            )
            details = {
                "issuers": list(access.issuers),
                "domains": {domain: role for domain, role in access.domains},
            }
            record(session, org_id, actor, Change("org.access", org_id, details), now)

    async def set_default_engine(self, org: Org, engine: str, actor: Actor, now: float) -> Org:
        """Pin the engine the organisation's uploads use when they name none; answers the
        organisation as it is now. Uploads made before keep the engine they were made with."""
        async with self._db.write() as session:
            row = await session.get(Org, org.id, with_for_update=True)
            if row is None or row.deleted_at is not None:
                raise NotFound(f"There is no organisation {org.name!r}.")
            was = row.default_engine
            row.default_engine = engine
            if engine != was:
                change = Change("org.engine", row.name, {"engine": engine, "was": was})
                record(session, row.id, actor, change, now)
        return row

    # -- users ---------------------------------------------------------------------------------

    @retried
    async def user(self, user_id: str) -> User | None:
        async with self._db.read() as session:
            return await session.get(User, user_id)

    async def sign_in(self, identity: Identity, remote: str | None, now: float) -> SignedIn:
        """The user this identity is, made on their first sign-in, with their email and name
        brought up to date; invitations to a verified email are accepted, and organisations whose
        joining domains match it are joined (where those trust the issuer)."""
        async with self._db.write() as session:
            user = await session.scalar(
                select(User).where(User.issuer == identity.issuer, User.subject == identity.subject)
            )
            if user is None:
                user = User(
                    id=new_id(),
                    name=identity.name or identity.email or identity.subject,
                    email=identity.email,
                    issuer=identity.issuer,
                    subject=identity.subject,
                    created_at=now,
                )
                session.add(user)
                await session.flush()
            else:
                user.email = identity.email
                user.name = identity.name or user.name
            joined: list[tuple[str, Role]] = []
            if identity.email and identity.email_verified:
                actor = Actor(user.id, identity.email, remote)
                for org, role, how in await _joinable(session, identity, user.id):
                    session.add(
                        Membership(org_id=org.id, user_id=user.id, role=role, created_at=now)
                    )
                    change = Change("member.join", identity.email, {"role": role, "by": how})
                    record(session, org.id, actor, change, now)
                    joined.append((org.name, role))
                await session.execute(delete(Invitation).where(Invitation.email == identity.email))
            return SignedIn(user, tuple(joined))


async def _joinable(
    session: AsyncSession, identity: Identity, user_id: str
) -> list[tuple[Org, Role, str]]:
    """Organisations the identity may join now, with the role and how: invited, or by domain.
    An invitation wins over a domain's role; organisations that list issuers must list this one."""
    assert identity.email is not None
    domain = identity.email.rpartition("@")[2]
    member_of = select(Membership.org_id).where(Membership.user_id == user_id)
    trusts = select(OrgIssuer.org_id).where(
        OrgIssuer.issuer.in_({identity.issuer, *identity.vouched_by})
    )
    lists_issuers = select(OrgIssuer.org_id)
    found: dict[str, tuple[Org, Role, str]] = {}
    for model, column, value, how in (
        (OrgDomain, OrgDomain.domain, domain, "domain"),
        (Invitation, Invitation.email, identity.email, "invitation"),
    ):
        rows = await session.execute(
            select(Org, model.role)
            .join(model, model.org_id == Org.id)
            .where(
                column == value,
                Org.deleted_at.is_(None),
                Org.id.not_in(member_of),
                Org.id.not_in(lists_issuers) | Org.id.in_(trusts),
            )
        )
        for org, role in rows:
            found[org.id] = (org, role_named(role), how)
    return list(found.values())


def _new_org(name: str, default_engine: str, quotas: Quotas, now: float) -> Org:
    return Org(
        id=new_id(),
        name=name,
        default_engine=default_engine,
        max_file_size=quotas.max_file_size,
        plan=quotas.plan,
        max_bytes_per_month=quotas.max_bytes_per_month,
        max_concurrent_uploads=quotas.max_concurrent_uploads,
        created_at=now,
    )


async def _org_named(session: AsyncSession, name: str, *, deleted_too: bool = False) -> Org | None:
    query = select(Org).where(Org.name == name)
    if not deleted_too:
        query = query.where(Org.deleted_at.is_(None))
    org: Org | None = await session.scalar(query)
    return org


def _name_taken(name: str) -> Conflict:
    return Conflict(f"The organisation name {name!r} is taken; choose another.")
