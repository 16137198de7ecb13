"""Refusals the server answers with, and the handlers that turn every error into ``ErrorBody``.

Route and store code raise a :class:`Problem` subclass named after its status; Litestar's own
exceptions (a malformed body, an unknown route, a wrong method) get their detail rewritten into one
sentence; a database out of reach (``StoreUnavailable``) is 503, which clients and workers retry;
a client that hung up (:class:`ClientDisconnected`) is answered 499, as nginx does, and logged at
debug level: a long-poll given up is normal, and 5xx must mean a fault of the server's; anything
else is a bug, logged with its traceback and answered 500 without details.

    Problem          the caller asked for something the server refuses
    ├── BadRequest   400  a malformed body or parameter
    ├── Unauthorized 401  no token, or one the server does not know
    ├── Forbidden    403  a role that may not do this
    ├── NotFound     404  no such object in the caller's organisation
    ├── Conflict     409  a lost race, a stale lease, a finished job
    ├── Gone         410  an object deleted for good (a result past its retention)
    └── TooLarge     413  over the plan's size limit
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)

from fap.api import ErrorBody
from fap.server.store.outages import StoreUnavailable

__all__ = (
    "CLIENT_CLOSED_REQUEST",
    "BadRequest",
    "ClientDisconnected",
    "Conflict",
    "Forbidden",
    "Gone",
    "NotFound",
    "Problem",
    "TooLarge",
    "Unauthorized",
    "error_response",
    "exception_handlers",
    "shown_id",
)

logger = logging.getLogger(__name__)


class Problem(Exception):
    """A refusal: ``str(problem)`` is the one sentence the caller reads."""

    status_code: ClassVar[int] = 400


class BadRequest(Problem):
    status_code = 400


class Unauthorized(Problem):
    status_code = 401


class Forbidden(Problem):
    status_code = 403


class NotFound(Problem):
    status_code = 404


class Conflict(Problem):
    status_code = 409


class Gone(Problem):
    status_code = 410


class TooLarge(Problem):
    status_code = 413


class ClientDisconnected(Exception):
    """The client hung up before it had its answer: nobody is left to read one."""


# nginx's status for it; no client sees it, the access log and the metrics do.
CLIENT_CLOSED_REQUEST = 499

_PRINTABLE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def shown_id(value: str) -> str:
    """An id as a message may quote it: itself if it looks like an id, else a description."""
    return value if _PRINTABLE_ID.fullmatch(value) else "with that id"


def error_response(
    status_code: int, detail: str, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(status_code=status_code, detail=detail),
        status_code=status_code,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _problem(request: Request[Any, Any, Any], problem: Problem) -> Response[ErrorBody]:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status_code == 401 else None
    return error_response(problem.status_code, str(problem), headers)


def _http_exception(request: Request[Any, Any, Any], error: HTTPException) -> Response[ErrorBody]:
    status = error.status_code
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, error.detail)
        return error_response(status, "The server failed to handle this request; its log says why.")
    return error_response(status, _sentence(request, error), headers=error.headers)


def _unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[ErrorBody]:
    logger.exception("%s %s failed", request.method, request.url.path, exc_info=error)
    return error_response(500, "The server failed to handle this request; its log says why.")


def _sentence(request: Request[Any, Any, Any], error: HTTPException) -> str:
    """Litestar's terse details ("Not Found", "Validation failed for …") made into a sentence."""
    method, path = request.method, request.url.path
    if isinstance(error, NotFoundException) and error.detail == "Not Found":
        return f"There is no route {method} {path}."
    if isinstance(error, MethodNotAllowedException):
        allowed = error.headers.get("allow", "") if error.headers else ""
        hint = f"; it answers {allowed}" if allowed else ""
        return f"{method} is not allowed on {path}{hint}."
    if isinstance(error, ValidationException) and isinstance(error.extra, list) and error.extra:
        return _validation_sentence(error.extra[0])
    if isinstance(error.__cause__, SerializationException):
        reason = error.detail.rstrip(".").removeprefix("JSON is malformed: ")
        return f"The request body is not valid JSON: {_lower_first(reason)}."
    detail = error.detail.rstrip(".")
    if error.status_code == 400:
        return f"The request is malformed: {detail}."
    if error.status_code == 413:
        return f"The request body is too large: {detail}."
    return f"{detail}."


def _validation_sentence(item: object) -> str:
    if not isinstance(item, dict):
        return "The request is malformed."
    message = str(item.get("message", "")).rstrip(".")
    key = str(item.get("key", ""))
    source = str(getattr(item.get("source"), "value", item.get("source", "")))
    if source == "body":
        if message == repr(key) or message == "'data'":
            # msgspec found no body at all: the KeyError of the missing "data" argument.
            return "The request needs a JSON body."
        if key == "data":
            return f"The request body is invalid: {_lower_first(message)}."
        return f"The request body is invalid: {_lower_first(message)} at `{key}`."
    where = f" {source} parameter" if source else " parameter"
    return f"The{where} `{key}` is invalid: {_lower_first(message)}."


def _lower_first(text: str) -> str:
    if not text:
        return "it could not be decoded"
    if text[:2].isupper():  # an acronym: JSON, UTF-8
        return text
    return text[:1].lower() + text[1:]


def _client_disconnected(
    request: Request[Any, Any, Any], error: ClientDisconnected
) -> Response[ErrorBody]:
    logger.debug("%s %s: the client hung up", request.method, request.url.path)
    return error_response(CLIENT_CLOSED_REQUEST, "The client hung up before its answer.")


def _store_unavailable(
    request: Request[Any, Any, Any], error: StoreUnavailable
) -> Response[ErrorBody]:
    # The reason (an address, a driver's words) is for the log; callers only need to retry.
    logger.warning("%s %s: %s", request.method, request.url.path, error)
    return error_response(
        503,
        "The server cannot reach its database right now; try again shortly.",
        headers={"Retry-After": "1"},
    )


exception_handlers = {
    Problem: _problem,
    ClientDisconnected: _client_disconnected,
    StoreUnavailable: _store_unavailable,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
