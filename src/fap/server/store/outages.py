"""When the database cannot be reached: the StoreUnavailable that says so, how to recognise one,
and the one retry of work that is safe to repeat.

A PostgreSQL server that restarts, fails over or runs out of connections is an outage, not a bug:
requests meanwhile are answered 503 (clients and workers retry those) and the server carries on
without a restart once the database is back. Any other database error stays what it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fap.server.errors import StoreUnavailable

__all__ = ("StoreUnavailable", "is_outage", "reason_of", "retried", "store_unavailable")

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# What a lost or refused connection looks like, from the socket up to the server's own refusals
# (shutting down, starting up, too many connections). TimeoutError is an OSError too.
_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    PoolTimeout,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def store_unavailable(error: BaseException) -> StoreUnavailable:
    """The StoreUnavailable that says ``error`` (an outage, see :func:`is_outage`) happened."""
    lost = isinstance(error, DBAPIError) and error.connection_invalidated
    return StoreUnavailable(
        f"The state store cannot be reached: {reason_of(error)}.", lost_connection=lost
    )


def is_outage(error: BaseException) -> bool:
    """Whether ``error``, or what it wraps, says the database is out of reach."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _OUTAGES):
            return True
        wrapped = current.orig if isinstance(current, DBAPIError) else None
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return False


def retried(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run ``method`` (one whole transaction) a second time if its connection broke under it.

    Only for work that is safe to repeat even if the first run committed before the connection
    broke: reads, and writes that set the same values again. A connection that cannot be made at
    all is not retried here; the caller gets 503 and tries again later.
    """

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except StoreUnavailable as error:
            if not error.lost_connection:
                raise
            logger.info("%s: the database connection broke; trying once more", method.__qualname__)
            return await method(*args, **kwargs)

    return run


def reason_of(error: BaseException) -> str:
    """The driver's first line about ``error``, to end a sentence with."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return (text[0] if text else type(error).__name__).rstrip(".")
