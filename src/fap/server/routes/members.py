"""Members of an organisation: the list, invitations, roles, removal.

Admins manage members and viewers below them; only an owner may make, change or remove an owner,
and an organisation always keeps one (the store checks that inside the change).
"""

from __future__ import annotations

from litestar import delete, get, post, put
from litestar.params import FromPath, JSONBody

from fap.api import (
    INVITATION,
    INVITATIONS,
    MEMBER,
    MEMBER_ROLE,
    MEMBERS,
    Invitation,
    InvitationInfo,
    MemberInfo,
    MemberList,
    Role,
    RoleChange,
    role_named,
)
from fap.server.auth import Caller, Permission, needs
from fap.server.errors import Forbidden, NotFound
from fap.server.queue import chunks_topic, upload_topic
from fap.server.routes.deps import CallerDep, ServicesDep, actor_of, route
from fap.server.routes.request import FapRequest
from fap.server.routes.validation import check_email, check_text
from fap.server.store import User

__all__ = ("change_role", "invite", "list_members", "remove_member", "uninvite")

_MANAGE = needs(Permission.MANAGE_MEMBERS)


@get(route(MEMBERS), opt=needs(Permission.READ))
async def list_members(caller: CallerDep, services: ServicesDep) -> MemberList:
    store = services.store.members
    members = await store.members(caller.org.id)
    invitations = await store.invitations(caller.org.id)
    return MemberList(
        members=[
            MemberInfo(user_id=user.id, name=user.name, email=user.email, role=role)
            for user, role in members
        ],
        invitations=[
            InvitationInfo(
                email=invitation.email,
                role=role_named(invitation.role),
                created_at=invitation.created_at,
            )
            for invitation in invitations
        ],
    )


@post(route(INVITATIONS), opt=_MANAGE, status_code=201)
async def invite(
    request: FapRequest, data: JSONBody[Invitation], caller: CallerDep, services: ServicesDep
) -> InvitationInfo:
    """Whoever signs in with this email (verified by their identity provider) joins with the role."""
    email = check_email(data.email)
    _may_grant(caller, data.role)
    now = services.clock()
    await services.store.members.invite(
        caller.org.id, email, data.role, actor_of(request, caller.user), now
    )
    return InvitationInfo(email=email, role=data.role, created_at=now)


@delete(route(INVITATION), opt=_MANAGE, status_code=204)
async def uninvite(
    request: FapRequest, email: FromPath[str], caller: CallerDep, services: ServicesDep
) -> None:
    address = check_email(email)
    if not await services.store.members.cancel_invitation(
        caller.org.id, address, actor_of(request, caller.user), services.clock()
    ):
        raise NotFound(f"{address} has no invitation to {caller.org.name}.")


@put(route(MEMBER_ROLE), opt=_MANAGE, status_code=200)
async def change_role(
    request: FapRequest,
    member: FromPath[str],
    data: JSONBody[RoleChange],
    caller: CallerDep,
    services: ServicesDep,
) -> MemberInfo:
    """Give a member another role; ``member`` is their user id or email."""
    user = await _member(caller, services, member)
    current = await services.store.members.role_in(caller.org.id, user.id)
    assert current is not None  # _member found them in the organisation
    _may_grant(caller, data.role)
    _may_grant(caller, current)
    await services.store.members.set_role(
        caller.org.id, user, data.role, actor_of(request, caller.user), services.clock()
    )
    return MemberInfo(user_id=user.id, name=user.name, email=user.email, role=data.role)


@delete(route(MEMBER), opt=_MANAGE, status_code=204)
async def remove_member(
    request: FapRequest, member: FromPath[str], caller: CallerDep, services: ServicesDep
) -> None:
    """Remove a member: their API tokens in the organisation are revoked, their sessions lose
    it, and their unfinished uploads there fail, at once: their devices get no new results."""
    user = await _member(caller, services, member)
    current = await services.store.members.role_in(caller.org.id, user.id)
    assert current is not None
    if user.id != caller.user.id:  # anyone may leave; removing others needs the right to
        _may_grant(caller, current)
    _, failed = await services.store.members.remove_member(
        caller.org.id, user, actor_of(request, caller.user), services.clock()
    )
    for upload_id in failed:  # their waiters and workers learn it now
        await services.notifier.publish(upload_topic(upload_id), chunks_topic(upload_id))


async def _member(caller: Caller, services: ServicesDep, who: str) -> User:
    check_text(who, "member", 320)
    user = await services.store.members.member_named(caller.org.id, who)
    if user is None:
        raise NotFound(f"{caller.org.name} has no member {who[:100]!r}.")
    return user


def _may_grant(caller: Caller, role: Role) -> None:
    """Only an owner deals in owners."""
    if role == "owner" and caller.role != "owner":
        raise Forbidden("Only an owner may make, change or remove an owner.")
