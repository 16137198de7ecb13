"""One call to the server for a command: settings built once, a session, the organisation.

The access commands all do the same around their API call: build the client settings from their
options, connect, and — for the organisation routes, which name it in their path — find the
organisation to act in (``--org`` / FAP_ORG / the config file, else the token's only one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from fap.cli.common import run
from fap.cli.upload import warn

if TYPE_CHECKING:
    from fap.api import ApiSession

__all__ = ("Remote", "call", "call_in_org")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Remote:
    """The options that say where a command's request goes and as whom."""

    server: str | None
    token: str | None
    retry_for: float | None
    org: str | None = None


def call(remote: Remote, action: Callable[[ApiSession], Awaitable[T]]) -> T:
    """Run ``action`` in a session with the server; a FapError ends the command in one line."""
    return run(_call(remote, action, in_org=False))


def call_in_org(remote: Remote, action: Callable[[ApiSession, str], Awaitable[T]]) -> T:
    """As :func:`call`, given the name of the organisation to act in as well."""
    return run(_call(remote, action, in_org=True))


async def _call(remote: Remote, action: Callable[..., Awaitable[T]], *, in_org: bool) -> T:
    from fap.client import connect, load_settings, resolve_org

    settings = load_settings(
        server=remote.server,
        token=remote.token,
        retry_for=remote.retry_for,
        org=remote.org,
        warn=warn,
    )
    async with connect(settings, warn=warn) as session:
        if in_org:
            return await action(session, await resolve_org(session, settings.org))
        return await action(session)
