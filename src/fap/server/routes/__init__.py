"""The HTTP API of docs/api.md: one module per group of routes."""

from __future__ import annotations

from litestar import Router
from litestar.types import ControllerRouterHandler

from fap.server.auth import auth_guard
from fap.server.routes.account import list_devices, me, register_device, revoke_device
from fap.server.routes.chunks import chunk_urls, report_chunk, report_chunks
from fap.server.routes.deps import dependencies
from fap.server.routes.jobs import (
    complete_job,
    complete_jobs,
    fail_job,
    heartbeat,
    job_chunks,
    job_result_url,
    lease,
    leases,
)
from fap.server.routes.members import change_role, invite, list_members, remove_member, uninvite
from fap.server.routes.orgs import (
    audit_log,
    create_org,
    delete_org,
    get_org,
    get_org_access,
    list_orgs,
    set_org_access,
    set_org_engine,
)
from fap.server.routes.signin import PUBLIC_HANDLERS, sign_out
from fap.server.routes.status import healthz, status
from fap.server.routes.tokens import create_token, list_tokens, revoke_token
from fap.server.routes.uploads import (
    create_upload,
    create_uploads,
    get_upload,
    list_uploads,
    upload_result,
    wait_uploads,
)
from fap.server.services import Services

__all__ = ("PUBLIC_HANDLERS", "V1_HANDLERS", "api_router", "dependencies", "healthz")

V1_HANDLERS: tuple[ControllerRouterHandler, ...] = (
    me,
    register_device,
    list_devices,
    revoke_device,
    list_orgs,
    create_org,
    get_org,
    delete_org,
    get_org_access,
    set_org_access,
    set_org_engine,
    audit_log,
    list_members,
    invite,
    uninvite,
    change_role,
    remove_member,
    create_token,
    list_tokens,
    revoke_token,
    sign_out,
    status,
    create_upload,
    create_uploads,
    list_uploads,
    wait_uploads,
    get_upload,
    chunk_urls,
    report_chunk,
    report_chunks,
    upload_result,
    lease,
    leases,
    heartbeat,
    job_chunks,
    job_result_url,
    complete_job,
    complete_jobs,
    fail_job,
)


def api_router(services: Services) -> Router:
    """Every ``/v1`` route, behind the token guard (the paths carry their own ``/v1``)."""
    return Router(
        path="/",
        route_handlers=list(V1_HANDLERS),
        guards=[auth_guard(services.store, services.clock)],
    )
