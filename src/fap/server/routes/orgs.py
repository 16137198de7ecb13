"""Organisations: the caller's, a new one, one by name, deleting one, who may join by signing in,
the engine its uploads use, and its audit log."""

from __future__ import annotations

from typing import Annotated

from litestar import delete, get, post, put
from litestar.params import JSONBody, QueryParameter

from fap.api import (
    AUDIT,
    MAX_LIST_LIMIT,
    ORG,
    ORG_ACCESS,
    ORG_ENGINE,
    ORGS,
    AuditEntry,
    AuditList,
    EngineSetting,
    OrgAccessInfo,
    OrgCreate,
    OrgInfo,
    OrgList,
    Role,
)
from fap.errors import ConfigError
from fap.issuers import check_issuer_url, within_trusted
from fap.server.auth import Permission, needs, quotas_of
from fap.server.errors import BadRequest, Forbidden
from fap.server.routes.deps import CallerDep, PersonDep, ServicesDep, actor_of, route
from fap.server.routes.request import FapRequest
from fap.server.routes.validation import check_domain, check_engine, check_org_name
from fap.server.store import Org, OrgAccess

__all__ = (
    "audit_log",
    "create_org",
    "delete_org",
    "get_org",
    "get_org_access",
    "list_orgs",
    "set_org_access",
    "set_org_engine",
)

_MAX_ACCESS_ENTRIES = 100


def org_info(org: Org, role: Role) -> OrgInfo:
    return OrgInfo(
        name=org.name,
        role=role,
        plan=org.plan,
        default_engine=org.default_engine,
        max_file_size=org.max_file_size,
        max_bytes_per_month=org.max_bytes_per_month,
        max_concurrent_uploads=org.max_concurrent_uploads,
        created_at=org.created_at,
    )


@get(ORGS, opt=needs(Permission.SIGNED_IN))
async def list_orgs(person: PersonDep, services: ServicesDep) -> OrgList:
    """The organisations the user belongs to, with their role in each."""
    if person.credential.org is not None:  # an API token knows its own organisation alone
        raise Forbidden("An API token acts in its own organisation alone; sign in to list yours.")
    memberships = await services.store.accounts.orgs_of(person.user.id)
    return OrgList(orgs=[org_info(org, role) for org, role in memberships])


@post(ORGS, opt=needs(Permission.SIGNED_IN), status_code=201)
async def create_org(
    request: FapRequest, data: JSONBody[OrgCreate], person: PersonDep, services: ServicesDep
) -> OrgInfo:
    """A new organisation, its creator its owner, on the server's default plan."""
    if person.credential.org is not None:
        raise Forbidden("Organisations are created by signed-in users, not by API tokens.")
    name = check_org_name(data.name)
    settings = services.settings
    org = await services.store.accounts.create_org(
        name,
        settings.default_engine,
        quotas_of(settings.default_plan, settings),
        person.user,
        actor_of(request, person.user),
        services.clock(),
    )
    return org_info(org, "owner")


@get(route(ORG), opt=needs(Permission.READ))
async def get_org(caller: CallerDep) -> OrgInfo:
    return org_info(caller.org, caller.role)


@delete(route(ORG), opt=needs(Permission.DELETE_ORG), status_code=204)
async def delete_org(request: FapRequest, caller: CallerDep, services: ServicesDep) -> None:
    """Delete the organisation: its members lose it and its tokens stop working at once."""
    await services.store.accounts.delete_org(
        caller.org, actor_of(request, caller.user), services.clock()
    )


@get(route(ORG_ACCESS), opt=needs(Permission.READ))
async def get_org_access(caller: CallerDep, services: ServicesDep) -> OrgAccessInfo:
    access = await services.store.accounts.access_of(caller.org.id)
    return OrgAccessInfo(issuers=list(access.issuers), domains=dict(access.domains))


@put(route(ORG_ACCESS), opt=needs(Permission.CONFIGURE), status_code=200)
async def set_org_access(
    request: FapRequest, data: JSONBody[OrgAccessInfo], caller: CallerDep, services: ServicesDep
) -> OrgAccessInfo:
    """Replace who may join by signing in: the issuers trusted, the email domains that join."""
    if len(data.issuers) > _MAX_ACCESS_ENTRIES or len(data.domains) > _MAX_ACCESS_ENTRIES:
        raise BadRequest(f"List at most {_MAX_ACCESS_ENTRIES} issuers and domains.")
    trusted = services.settings.trusted_issuers
    issuers: list[str] = []
    for value in data.issuers:
        try:
            issuer = check_issuer_url(value)
        except ConfigError as error:
            raise BadRequest(str(error)) from None
        if not within_trusted(issuer, trusted):
            names = sorted(known.issuer for known in trusted)
            raise BadRequest(
                f"This server does not trust {issuer}; it trusts "
                f"{', '.join(names) or 'no identity provider'}."
            )
        issuers.append(issuer)
    if "owner" in data.domains.values():
        raise BadRequest("Nobody becomes an owner by their email domain; invite them instead.")
    domains = {check_domain(domain): role for domain, role in data.domains.items()}
    access = OrgAccess(tuple(dict.fromkeys(issuers)), tuple(sorted(domains.items())))
    await services.store.accounts.set_access(
        caller.org.id, access, actor_of(request, caller.user), services.clock()
    )
    return OrgAccessInfo(issuers=list(access.issuers), domains=dict(access.domains))


@put(route(ORG_ENGINE), opt=needs(Permission.CONFIGURE), status_code=200)
async def set_org_engine(
    request: FapRequest, data: JSONBody[EngineSetting], caller: CallerDep, services: ServicesDep
) -> OrgInfo:
    """Pin the engine version (NAME@VERSION) the organisation's uploads use when they name none.

    Uploads made before keep theirs; the jobs of the new version go to the processors that run
    it (``GET /v1/status`` lists them), and wait until one does.
    """
    engine = check_engine(data.engine)
    org = await services.store.accounts.set_default_engine(
        caller.org, engine, actor_of(request, caller.user), services.clock()
    )
    return org_info(org, caller.role)


@get(route(AUDIT), opt=needs(Permission.READ_AUDIT))
async def audit_log(
    caller: CallerDep,
    services: ServicesDep,
    limit: Annotated[int, QueryParameter(description="How many events, newest first.")] = 100,
    before: Annotated[
        float | None, QueryParameter(description="Only events before this time (UNIX seconds).")
    ] = None,
) -> AuditList:
    """The organisation's audit log, newest first; ``before`` pages back from a time."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadRequest(f"The limit must be between 1 and {MAX_LIST_LIMIT}.")
    events = await services.store.audit.events(caller.org.id, limit, before)
    return AuditList(
        events=[
            AuditEntry(
                at=event.at,
                actor=event.actor,
                action=event.action,
                target=event.target,
                details=event.details,
                remote=event.remote,
            )
            for event in events
        ]
    )
