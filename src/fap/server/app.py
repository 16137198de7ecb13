"""The Litestar application: ``create_app(settings)`` builds it, its lifespan starts and stops the
services (migrations, the local bootstrap, the lease sweeper)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from fap import __version__
from fap.api import API_VERSION, API_VERSION_HEADER
from fap.config import ServerSettings
from fap.server.blobs import LocalBlobStore, blob_router
from fap.server.metrics import metrics_route
from fap.server.problems import exception_handlers
from fap.server.queue import Clock
from fap.server.routes import PUBLIC_HANDLERS, V1_HANDLERS, api_router, dependencies, healthz
from fap.server.routes.openapi import describe_errors
from fap.server.routes.request import FapRequest
from fap.server.services import Services
from fap.server.versions import VERSIONS, answer_headers, negotiation

__all__ = ("create_app", "services_of")

# JSON bodies of the API are small (a wait for 1000 ids is ~40 KB); blobs have their own bound.
_MAX_JSON_BODY = 1024 * 1024
_SERVICES = "services"


def create_app(
    settings: ServerSettings, *, clock: Clock = time.time, services: Services | None = None
) -> Litestar:
    """The fap server for ``settings``: embedded services unless others are given."""
    services = services or Services.from_settings(settings, clock)
    # The schema names every refusal each route can answer (the API fuzzing test holds it to that).
    describe_errors((healthz, *PUBLIC_HANDLERS, *V1_HANDLERS))
    handlers: list[ControllerRouterHandler] = [
        healthz,
        metrics_route(services.metrics),
        *PUBLIC_HANDLERS,
        api_router(services),
    ]
    if isinstance(services.blobs, LocalBlobStore):
        handlers.append(blob_router(services.blobs))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    return Litestar(
        route_handlers=handlers,
        dependencies=dependencies(services),
        exception_handlers=exception_handlers,
        lifespan=[lifespan],
        # Every answer names the newest API version and client release (server/versions.py).
        before_send=[
            answer_headers(VERSIONS, services, services.settings.client_latest or __version__)
        ],
        # Timed outermost, so refusals of an API version count too; answers reshaped inside.
        middleware=[services.metrics.middleware(), negotiation(VERSIONS, services)],
        openapi_config=OpenAPIConfig(
            title="fap",
            version=__version__,
            description=(
                f"File Analysis Pipeline API, version {API_VERSION}: the shapes of this schema. "
                f"Send {API_VERSION_HEADER}: YYYY-MM-DD (none: this version); older versions "
                "the server still speaks get their own shapes (docs/api.md, Versions)."
            ),
        ),
        request_max_body_size=_MAX_JSON_BODY,
        # Bodies decoded strictly and bounded, hang-ups told from faults: for every route.
        request_class=FapRequest,
        state=State({_SERVICES: services}),
        logging_config=None,
    )


def services_of(app: Litestar) -> Services:
    services: Services = app.state[_SERVICES]
    return services
