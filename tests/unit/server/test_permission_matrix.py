"""Every route x every kind of caller, generated from the permission table and the app's routes.

Each route needs one permission (``opt=needs(…)``). A caller whose role in the organisation holds
it gets past the guard (whatever the route then answers: a 400 for the empty body, a 404 for an
unknown id), one whose role does not is refused 403, a processor token may do PROCESS alone, and
a caller without a valid token (none, revoked, expired) gets 401. A member of another organisation
finds this one's routes absent (404). A new route is in the matrix without editing this test.

One server serves the whole matrix; each route gets organisations of its own, so a route that
deletes takes nothing from another's.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from litestar.handlers import HTTPRouteHandler
from tests.unit.server.harness import Server, error_body, running_server

from fap.api import (
    INVITATIONS,
    TOKEN,
    TOKENS,
    Invitation,
    TokenCreate,
    TokenCreated,
    TokenList,
)
from fap.server.auth import NEEDS, Permission, granted
from fap.server.routes import V1_HANDLERS

ORG = "{ORG}"  # in a route's path: the organisation of the route's own test
ROLES = ("viewer", "member", "admin", "owner")
UNKNOWN_ID = "0" * 32
TARGET = "target@{ORG}.example"  # the member that member routes act on
INVITED = "invited@{ORG}.example"
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_NUMBERS = itertools.count()


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # with its parameters filled in
    permission: Permission

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def in_org(self, org: str) -> str:
        return self.path.replace(ORG, org)


def routes() -> list[Route]:
    values = {"org": ORG, "member": TARGET, "email": INVITED}
    found: list[Route] = []
    for handler in V1_HANDLERS:
        assert isinstance(handler, HTTPRouteHandler)
        permission = handler.opt.get(NEEDS, Permission.READ)
        for path in handler.paths:
            filled = _PARAM.sub(lambda m: values.get(m.group(1), UNKNOWN_ID), path)
            found.extend(
                Route(method, filled, permission) for method in sorted(handler.http_methods)
            )
    return found


ROUTES = routes()


@dataclass
class Callers:
    """Everyone who calls a route, by what they are, and the organisation it acts on."""

    org: str
    tokens: dict[str, str | None]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    async with running_server(tmp_path_factory.mktemp("matrix") / "data") as server:
        yield server


async def callers(server: Server) -> Callers:
    number = next(_NUMBERS)
    org = f"acme-{number}"
    owner, processor = await server.new_org(org)
    tokens: dict[str, str | None] = {"owner": owner, "processor": processor}
    for role in ("viewer", "member", "admin"):
        tokens[role] = await server.new_user(org, role, role)  # type: ignore[arg-type]
    await server.new_user(org, "target", "viewer")
    invited = Invitation(email=INVITED.replace(ORG, org))
    await server.ok("POST", INVITATIONS.format(org=org), owner, invited, returns=dict)
    tokens["stranger"], _ = await server.new_org(f"elsewhere-{number}")
    tokens["none"] = None
    revoked = await api_token(server, org, owner, "revoked", None)
    listed = await server.ok("GET", TOKENS.format(org=org), owner, returns=TokenList)
    (revoked_id,) = [token.id for token in listed.tokens if token.name == "revoked"]
    gone = await server.call("DELETE", TOKEN.format(org=org, token_id=revoked_id), owner)
    assert gone.status_code == 204, gone.text
    tokens["revoked"] = revoked
    tokens["expired"] = await api_token(server, org, owner, "expired", 60)
    server.clock.advance(61)  # past the expired token's minute, within the sessions' lifetime
    # The strongest call last: a route that deletes must not take the others' objects first.
    order = ("none", "revoked", "expired", "processor", "stranger", *ROLES)
    return Callers(org, {caller: tokens[caller] for caller in order})


async def api_token(
    server: Server, org: str, owner: str, name: str, expires_in: float | None
) -> str:
    made = await server.ok(
        "POST",
        TOKENS.format(org=org),
        owner,
        TokenCreate(name=name, role="owner", expires_in=expires_in),
        returns=TokenCreated,
    )
    return made.token


def expected(route: Route, caller: str) -> Callable[[int], bool]:
    """What the caller may be answered on the route."""
    if caller in ("none", "revoked", "expired"):
        return lambda status: status == 401
    if caller == "processor":
        if route.permission == Permission.PROCESS:
            return lambda status: status not in (401, 403)
        return lambda status: status == 403
    if route.permission == Permission.PROCESS:
        return lambda status: status == 403
    if caller == "stranger":
        if f"/orgs/{ORG}" in route.path:  # this route's organisation: not theirs
            return lambda status: status == 404
        return lambda status: status not in (401, 403)
    if granted(caller, route.permission):  # type: ignore[arg-type]
        return lambda status: status not in (401, 403)
    return lambda status: status == 403


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_every_caller_gets_what_the_permission_table_says(
    shared: Server, route: Route
) -> None:
    server = shared
    everyone = await callers(server)
    path = route.in_org(everyone.org)
    wrong: list[str] = []
    for caller, token in everyone.tokens.items():
        response = await server.call(route.method, path, token, b"{}")
        assert response.status_code < 500, (caller, response.text)
        if response.status_code >= 400:
            error_body(response)
        if not expected(route, caller)(response.status_code):
            wrong.append(f"{caller}: {response.status_code} {response.text[:200]}")
    assert not wrong, "\n".join(wrong)


def test_the_matrix_covers_every_permission_and_many_routes() -> None:
    assert {route.permission for route in ROUTES} == set(Permission)
    assert len(ROUTES) >= 30
