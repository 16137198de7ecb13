"""Dependencies the routes declare by name: ``services``, ``caller``, ``person``, ``processor``."""

from __future__ import annotations

import re

from litestar.di import NamedDependency, Provide

from fap.server.auth import Caller, Person, Processor, caller, person, processor
from fap.server.routes.request import FapRequest
from fap.server.services import Services
from fap.server.store import Actor, User

__all__ = (
    "CallerDep",
    "PersonDep",
    "ProcessorDep",
    "ServicesDep",
    "actor_of",
    "dependencies",
    "route",
)

# What a route declares to receive the caller, the processor or the services, by parameter name.
CallerDep = NamedDependency[Caller]
PersonDep = NamedDependency[Person]
ProcessorDep = NamedDependency[Processor]
ServicesDep = NamedDependency[Services]

_PARAM = re.compile(r"\{(\w+)\}")


def route(path: str) -> str:
    """A path constant of :mod:`fap.api.paths` with its parameters typed for Litestar."""
    return _PARAM.sub(r"{\1:str}", path)


def actor_of(request: FapRequest, user: User) -> Actor:
    """Who makes a change, as the audit log records them: the user, from the client's address."""
    client = request.client
    return Actor(user.id, user.email or user.name, client.host if client else None)


def dependencies(services: Services) -> dict[str, Provide]:
    async def provide_services() -> Services:
        return services

    return {
        "services": Provide(provide_services),
        "caller": Provide(caller),
        "person": Provide(person),
        "processor": Provide(processor),
    }
