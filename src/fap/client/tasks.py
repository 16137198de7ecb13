"""Small helpers for structured concurrency in the client."""

from __future__ import annotations

import asyncio

__all__ = ("first_error",)


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error of a task group, so callers see a FapError, not a group of them."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending[:0] = error.exceptions
        else:
            leaves.append(error)
    real = [error for error in leaves if not isinstance(error, asyncio.CancelledError)]
    return (real or leaves)[0]
