"""Dated API versions: which ones this server speaks, and the one place where an answer is given
the shape an older version had.

A client sends the version it was built for in ``Fap-Api-Version`` (``YYYY-MM-DD``); a request
without the header is answered in the newest version. Every answer names the newest in the same
header; an answer to a request in a deprecated version also carries ``Deprecation`` (since when,
RFC 9745: ``@UNIX-SECONDS``) and ``Sunset`` (from when it is refused, RFC 8594: an HTTP date). A
version the server does not know, or one past its sunset, is refused with 400 and one sentence
naming the versions it speaks. Only the ``/v1`` routes are versioned.

The registry, :data:`VERSIONS`, lists the versions spoken, newest first. Each names the breaking
changes it made, per route, as a *backport*: how to give an answer of that version the shape the
version before it had. An answer to a request in version V passes through the backports of every
version newer than V, newest first, so each backport is written once, against its neighbour, and
the next breaking change is one more entry at the top::

    ApiVersion("2027-02-01", {("GET", ORG): org_info_before_2027_02_01}),

with the entry it supersedes given its ``deprecated`` and ``sunset`` dates. The routes and the
OpenAPI schema speak the newest version only; nothing else in the server knows of older ones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any, cast

import msgspec
from litestar.datastructures import Headers, MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, HTTPResponseStartEvent, HTTPScope, Message, Receive, Scope, Send

from fap.api import (
    API_VERSION,
    API_VERSION_HEADER,
    CLIENT_LATEST_HEADER,
    DEPRECATION_HEADER,
    ME,
    ORG_HEADER,
    SUNSET_HEADER,
    ErrorBody,
    Me,
    Membership,
    Role,
    Struct,
)
from fap.errors import FapError
from fap.server.errors import BadRequest, NotFound
from fap.server.problems import answer_for
from fap.server.services import Services

__all__ = (
    "VERSIONS",
    "Answering",
    "ApiVersion",
    "Backport",
    "Versions",
    "answer_headers",
    "negotiation",
)

logger = logging.getLogger(__name__)

# A route as the registry names it: the method and the path as spelled in fap.api.paths.
Route = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Answering:
    """What a backport may consult besides the answer: the request's headers, the services."""

    headers: Headers
    services: Services


# JSON values in (the answer in the newer shape), JSON values out (the older shape); raising a
# Refusal answers that instead (an answer the older shape cannot express).
Backport = Callable[[Any, Answering], Awaitable[Any]]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Litestar's path templates type their parameters ("{org:str}"); fap.api.paths does not.
_TYPED_PARAM = re.compile(r"\{(\w+):\w+\}")


@dataclass(frozen=True, slots=True)
class ApiVersion:
    """One dated version: the breaking changes it made, and when it goes away."""

    name: str  # YYYY-MM-DD
    backports: Mapping[Route, Backport] = field(default_factory=dict)
    deprecated: date | None = None  # since when clients are told to move on
    sunset: date | None = None  # refused from this day on (UTC)

    def retired(self, today: date) -> bool:
        return self.sunset is not None and today >= self.sunset


class Versions:
    """The versions spoken, newest first, and what answering in one of them takes."""

    def __init__(self, versions: Sequence[ApiVersion]) -> None:
        names = [version.name for version in versions]
        for name in names:
            if not _DATE.fullmatch(name):
                raise ValueError(f"API version {name!r} is not a date, YYYY-MM-DD.")
            date.fromisoformat(name)
        if names != sorted(set(names), reverse=True):
            raise ValueError(f"API versions must be listed newest first, once each: {names}.")
        if versions[0].deprecated or versions[0].sunset:
            raise ValueError(f"The newest API version {names[0]} cannot be deprecated.")
        self._versions = tuple(versions)
        self._by_name = {version.name: version for version in versions}
        self.latest = versions[0]

    def known(self, asked: str | None) -> ApiVersion | None:
        """The version a request asks for (none: the newest); None if unknown."""
        if asked is None or not asked.strip():
            return self.latest
        return self._by_name.get(asked.strip())

    def resolve(self, asked: str | None, today: date) -> ApiVersion:
        """The version to answer in; BadRequest for one unknown or retired."""
        version = self.known(asked)
        spoken = " and ".join(self.spoken(today))
        if version is None:
            shown = (asked or "").strip()[:40]
            raise BadRequest(
                f"This server does not speak API version {shown!r}; it speaks {spoken} (send "
                f"one in {API_VERSION_HEADER}, or none for the newest)."
            )
        if version.retired(today):
            raise BadRequest(
                f"API version {version.name} was retired on {version.sunset}; this server "
                f"speaks {spoken}: upgrade fap."
            )
        return version

    def spoken(self, today: date) -> list[str]:
        return [version.name for version in self._versions if not version.retired(today)]

    def backports(self, version: ApiVersion, route: Route) -> list[Backport]:
        """What turns an answer of the newest version on ``route`` into ``version``'s: the
        backports of every newer version, newest first."""
        newer = self._versions[: self._versions.index(version)]
        return [v.backports[route] for v in newer if route in v.backports]


# -- the breaking changes, newest first ----------------------------------------------------------


class MeOfOneOrg(Struct):
    """``GET /v1/me`` as API version 2026-11-30 answered it, when a user had one organisation."""

    user_id: str
    user_name: str
    org: str
    role: Role
    default_engine: str
    max_file_size: int


async def me_of_one_org(answer: Any, answering: Answering) -> Any:
    """2026-12-01 made ``GET /v1/me`` list every organisation of the user (``Me``); before, it
    answered the user's one organisation with its engine and file-size limit. A user of several
    is answered the one the request acts in (``Fap-Org``), or told to name one or upgrade."""
    me = msgspec.convert(answer, Me)
    membership = _acting_in(me, answering.headers.get(ORG_HEADER))
    org = await answering.services.store.accounts.org_named(membership.org)
    if org is None:  # deleted between the two reads
        raise NotFound(f"There is no organisation {membership.org!r}.")
    return msgspec.to_builtins(
        MeOfOneOrg(
            user_id=me.user_id,
            user_name=me.name,
            org=org.name,
            role=membership.role,
            default_engine=org.default_engine,
            max_file_size=org.max_file_size,
        )
    )


def _acting_in(me: Me, named: str | None) -> Membership:
    if len(me.orgs) == 1:
        return me.orgs[0]
    if not me.orgs:
        raise BadRequest(
            "You belong to no organisation yet, which API version 2026-11-30 cannot show; "
            "upgrade fap."
        )
    for membership in me.orgs:
        if named is not None and membership.org == named.strip():
            return membership
    names = ", ".join(sorted(membership.org for membership in me.orgs))
    raise BadRequest(
        f"You belong to several organisations ({names}), and API version 2026-11-30 shows one: "
        f"name it with --org NAME (the {ORG_HEADER} header), or upgrade fap."
    )


VERSIONS = Versions(
    (
        ApiVersion(API_VERSION, {("GET", ME): me_of_one_org}),
        ApiVersion("2026-11-30", deprecated=date(2026, 12, 1), sunset=date(2027, 3, 1)),
    )
)


# -- applying them ------------------------------------------------------------------------------


def _versioned(scope: Scope) -> bool:
    return scope["type"] == ScopeType.HTTP and scope["path"].startswith("/v1/")


def _today(services: Services) -> date:
    return datetime.fromtimestamp(services.clock(), UTC).date()


def answer_headers(
    versions: Versions, services: Services, client_latest: str
) -> Callable[[Message, Scope], Awaitable[None]]:
    """A ``before_send`` hook: every answer names the newest API version and the newest client
    release; one to a request in a deprecated version says since when, and until when."""

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        headers[API_VERSION_HEADER] = versions.latest.name
        headers[CLIENT_LATEST_HEADER] = client_latest
        if not _versioned(scope):
            return
        version = versions.known(Headers.from_scope(scope).get(API_VERSION_HEADER))
        if version is not None and version.deprecated is not None:
            headers[DEPRECATION_HEADER] = f"@{int(_midnight(version.deprecated).timestamp())}"
        if version is not None and version.sunset is not None:
            headers[SUNSET_HEADER] = format_datetime(_midnight(version.sunset), usegmt=True)

    return hook


def negotiation(versions: Versions, services: Services) -> DefineMiddleware:
    """Middleware around each route: refuses an unknown or retired version, and passes an answer
    to an older version through its backports."""
    return DefineMiddleware(_Negotiation, versions=versions, services=services)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class _Negotiation:
    def __init__(self, app: ASGIApp, versions: Versions, services: Services) -> None:
        self._app = app
        self._versions = versions
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _versioned(scope):
            await self._app(scope, receive, send)
            return
        scope = cast("HTTPScope", scope)
        headers = Headers.from_scope(scope)
        try:
            version = self._versions.resolve(
                headers.get(API_VERSION_HEADER), _today(self._services)
            )
        except BadRequest as refusal:
            await _refuse(send, scope, refusal)
            return
        route = (scope["method"], _TYPED_PARAM.sub(r"{\1}", scope["path_template"]))
        backports = self._versions.backports(version, route)
        if not backports:
            await self._app(scope, receive, send)
            return
        answer = _Buffered()
        await self._app(scope, receive, answer.send)
        if answer.start is None:
            return  # nothing was answered (the client hung up)
        status = answer.start["status"]
        if not 200 <= status < 300 or status == 204:  # refusals and "nothing" keep their shape
            await answer.forward(send)
            return
        body: Any = msgspec.json.decode(answer.body)
        answering = Answering(headers, self._services)
        try:
            for backport in backports:
                body = await backport(body, answering)
        except FapError as error:
            if answer_for(type(error)) is None:
                raise
            await _refuse(send, scope, error)
            return
        answer.body = msgspec.json.encode(body)
        await answer.forward(send)


class _Buffered:
    """An answer held back whole, to be reshaped before it is sent."""

    def __init__(self) -> None:
        self.start: HTTPResponseStartEvent | None = None
        self.body = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def forward(self, send: Send) -> None:
        assert self.start is not None
        MutableScopeHeaders.from_message(self.start)["content-length"] = str(len(self.body))
        await send(self.start)
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


async def _refuse(send: Send, scope: HTTPScope, error: FapError) -> None:
    """Answer ``error`` as the exception handlers would (an ``ErrorBody``, its status from the
    one table): raised instead, after the route's answer began, Litestar could only fail."""
    answer = answer_for(type(error))
    assert answer is not None
    if answer.level is not None:
        logger.log(answer.level, "%s %s: %s", scope["method"], scope["path"], error)
    detail = answer.detail if answer.detail is not None else str(error)
    body = msgspec.json.encode(ErrorBody(status_code=answer.status, detail=detail))
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in answer.headers.items()]
    await send({"type": "http.response.start", "status": answer.status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})
