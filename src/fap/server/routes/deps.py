"""Dependencies the routes declare by name: ``services``, ``caller``, ``processor``."""

from __future__ import annotations

import re

from litestar.di import NamedDependency, Provide

from fap.server.auth import Caller, Processor, caller, processor
from fap.server.services import Services

__all__ = ("CallerDep", "ProcessorDep", "ServicesDep", "dependencies", "route")

# What a route declares to receive the caller, the processor or the services, by parameter name.
CallerDep = NamedDependency[Caller]
ProcessorDep = NamedDependency[Processor]
ServicesDep = NamedDependency[Services]

_PARAM = re.compile(r"\{(\w+)\}")


def route(path: str) -> str:
    """A path constant of :mod:`fap.api.paths` with its parameters typed for Litestar."""
    return _PARAM.sub(r"{\1:str}", path)


def dependencies(services: Services) -> dict[str, Provide]:
    async def provide_services() -> Services:
        return services

    return {
        "services": Provide(provide_services),
        "caller": Provide(caller),
        "processor": Provide(processor),
    }
