"""The HTTP edge of the server's errors: each error of :mod:`fap.server.errors` mapped to its
status, in one table, and the handlers that answer every exception with an ``ErrorBody``.

The rest of the server raises errors named for what happened and never chooses a status; this is
the one module that does. Besides the table: Litestar's own exceptions (a malformed body, an
unknown route, a wrong method) get their detail rewritten into one sentence; a service out of reach
(:class:`Unavailable`) is 503 with Retry-After, which clients and workers retry, logged as a
warning; a client that hung up (:class:`ClientDisconnected`) is answered 499, as nginx does, and
logged at debug level: a long-poll given up is normal, and 5xx must mean a fault of the server's;
anything else is a bug, logged with its traceback and answered 500 without details.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap

from fap.api import ErrorBody
from fap.server.errors import (
    BadRequest,
    BlobStoreUnavailable,
    ClientDisconnected,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    QuotaExceeded,
    Refusal,
    StoreUnavailable,
    TooLarge,
    Unauthorized,
    Unavailable,
)

__all__ = (
    "ANSWERS",
    "CLIENT_CLOSED_REQUEST",
    "Answer",
    "answer_for",
    "error_response",
    "exception_handlers",
)

logger = logging.getLogger(__name__)

# nginx's status for it; no client sees it, the access log and the metrics do.
CLIENT_CLOSED_REQUEST = 499

# Retry soon: an outage is noticed per request, and the next one may already succeed.
_RETRY = {"Retry-After": "1"}


@dataclass(frozen=True, slots=True)
class Answer:
    """How an error is answered: its status, its headers, and, where ``str(error)`` is for the log
    only, the sentence the caller reads instead."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    detail: str | None = None
    level: int | None = None  # logged at this level (with the error's own message), or not at all


# The one place a server error becomes a status. A subclass answers as its nearest listed base
# (Sealed as Conflict); tests/unit/server/test_problems.py holds every class of the tree to one.
ANSWERS: Mapping[type[Exception], Answer] = {
    Refusal: Answer(400),
    BadRequest: Answer(400),
    Unauthorized: Answer(401, {"WWW-Authenticate": "Bearer"}),
    Forbidden: Answer(403),
    NotFound: Answer(404),
    Conflict: Answer(409),
    Gone: Answer(410),
    TooLarge: Answer(413),
    QuotaExceeded: Answer(429),
    Unavailable: Answer(
        503,
        _RETRY,
        "A service the server needs is out of reach; try again shortly.",
        logging.WARNING,
    ),
    StoreUnavailable: Answer(
        503,
        _RETRY,
        "The server cannot reach its database right now; try again shortly.",
        logging.WARNING,
    ),
    BlobStoreUnavailable: Answer(
        503,
        _RETRY,
        "The server cannot reach its object store right now; try again shortly.",
        logging.WARNING,
    ),
    ClientDisconnected: Answer(CLIENT_CLOSED_REQUEST, level=logging.DEBUG),
}


def answer_for(kind: type[Exception]) -> Answer | None:
    """The answer of ``kind``: its own entry, else its nearest base's; None for no error of ours."""
    for base in kind.__mro__:
        if base in ANSWERS:
            return ANSWERS[base]
    return None


def error_response(
    status_code: int, detail: str, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(status_code=status_code, detail=detail),
        status_code=status_code,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _answer(request: Request[Any, Any, Any], error: Exception) -> Response[ErrorBody]:
    answer = answer_for(type(error))
    if answer is None:  # registered below for the table's classes only: cannot happen
        return _unexpected(request, error)
    if answer.level is not None:
        # The reason (an address, a driver's words) is for the log; callers only need to retry.
        logger.log(answer.level, "%s %s: %s", request.method, request.url.path, error)
    detail = answer.detail if answer.detail is not None else str(error)
    return error_response(answer.status, detail, dict(answer.headers) or None)


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


exception_handlers: ExceptionHandlersMap = {
    **{kind: _answer for kind in ANSWERS},
    HTTPException: _http_exception,
    Exception: _unexpected,
}
