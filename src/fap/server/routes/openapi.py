"""What the OpenAPI schema says every route may answer besides its success: ErrorBody refusals.

One place for every route, so a route added later is described too: the API fuzzing test holds
each answer to this schema, and a status missing here fails it.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.types import ControllerRouterHandler

from fap.api import ErrorBody

__all__ = ("ERROR_RESPONSES", "describe_errors")

ERROR_RESPONSES: dict[int, ResponseSpec] = {
    status: ResponseSpec(data_container=ErrorBody, description=description)
    for status, description in (
        (400, "The request is malformed: a body, a field or a parameter (one sentence why)."),
        (401, "No token, or one the server does not know."),
        (403, "The token's role may not do this."),
        (404, "No such route, or no such object in the caller's organisation."),
        (405, "The route does not answer this method."),
        (409, "A lost race, a lease that is not current, or an object in another state."),
        (410, "The object was deleted for good (a result past its retention)."),
        (413, "Over a size limit: the plan's, a result's, or the request body's."),
        (429, "Over a quota of the organisation's plan: a month's bytes, uploads in flight."),
        (503, "The database or the object store is out of reach; retry shortly."),
    )
}


def describe_errors(handlers: Iterable[ControllerRouterHandler]) -> None:
    """Add ERROR_RESPONSES to each route handler's own ``responses`` (which win)."""
    for handler in handlers:
        if isinstance(handler, HTTPRouteHandler):
            handler.responses = {**ERROR_RESPONSES, **(handler.responses or {})}
