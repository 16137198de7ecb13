"""The doctor's checks against the server: does it answer (and in which API version), does it take
the token, does it know this device's key, does its clock agree with this one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from fap import __version__
from fap.api import (
    API_VERSION,
    API_VERSION_HEADER,
    CLIENT_LATEST_HEADER,
    HEALTHZ,
    ApiSession,
    Me,
    parse_servers,
    tls_context,
)
from fap.client.access import fetch_me, list_devices
from fap.client.doctor.check import Check, failed, ok, warning
from fap.client.doctor.local import local_identity
from fap.client.releases import is_newer
from fap.client.session import resolve_credentials
from fap.client.state import resolve_server
from fap.config import ClientSettings
from fap.errors import EXIT_UNREACHABLE, ConfigError, FapError

__all__ = (
    "CLOCK_FAIL_SECONDS",
    "CLOCK_WARN_SECONDS",
    "Answer",
    "check_clock",
    "check_device",
    "check_server",
    "check_token",
)

# Beyond these, a clock off the server's is worth a word, then a failure: sign-ins and presigned
# URLs are given minutes to live, counted by the server's clock.
CLOCK_WARN_SECONDS = 30.0
CLOCK_FAIL_SECONDS = 300.0
# Between tries of a server that does not answer yet (one starting up), within the retry budget.
_PROBE_PAUSE = 0.5


@dataclass(frozen=True, slots=True)
class Answer:
    """What a server's health route told: its clock, its API version, the newest fap it knows."""

    server: str
    date: float | None  # the server's clock (its Date header), None if it sent none
    local: float  # this machine's clock at the middle of the request
    api_version: str
    client_latest: str


async def check_server(
    settings: ClientSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[Check, Answer | None]:
    """Every replica's health route; the first answer, unless none came or it is no use."""
    try:
        servers = parse_servers(resolve_server(settings.server, settings.home))
    except ConfigError as error:
        return failed("server", str(error), error.exit_code), None
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(10.0), transport=transport, verify=tls_context()
    ) as http:
        found = [await _probe(http, url, settings.retry_for, clock) for url in servers]
    answers = [answer for answer in found if isinstance(answer, Answer)]
    silent = [problem for problem in found if isinstance(problem, str)]
    if not answers:
        return failed("server", "; ".join(silent) + ".", EXIT_UNREACHABLE), None
    answer = answers[0]
    what = f"{answer.server} answers in API {answer.api_version}"
    if answer.api_version < API_VERSION:  # dated versions: YYYY-MM-DD sorts as it counts
        return failed(
            "server",
            f"{what}, older than API {API_VERSION}, which this fap speaks: upgrade the server, "
            "or use a fap as old as it.",
        ), None
    if silent:
        return warning("server", f"{what}; but {'; '.join(silent)}."), answer
    if answer.client_latest and is_newer(answer.client_latest):
        return warning(
            "server", f"{what}; fap {answer.client_latest} is out (this is {__version__})."
        ), answer
    latest = f"; newest fap {answer.client_latest}" if answer.client_latest else ""
    return ok("server", what + latest), answer


async def _probe(
    http: httpx.AsyncClient, server: str, retry_for: float, clock: Callable[[], float]
) -> Answer | str:
    """The server's health answer, or why none came within ``retry_for`` seconds."""
    deadline = time.monotonic() + retry_for
    while True:
        before = clock()
        try:
            response = await http.get(server + HEALTHZ)
        except httpx.TransportError as error:
            problem = f"{server} did not answer ({type(error).__name__})"
        else:
            local = (before + clock()) / 2
            if response.status_code == 200 and API_VERSION_HEADER in response.headers:
                return Answer(
                    server=server,
                    date=_http_date(response.headers.get("Date")),
                    local=local,
                    api_version=response.headers[API_VERSION_HEADER].strip()[:40],
                    client_latest=response.headers.get(CLIENT_LATEST_HEADER, "").strip()[:40],
                )
            if response.status_code == 200:
                return f"{server} answered, but not as a fap server does: check the address"
            problem = f"{server} answered {response.status_code}"
        if time.monotonic() + _PROBE_PAUSE > deadline:
            return f"{problem}: check that it is running and that the address is right"
        await asyncio.sleep(_PROBE_PAUSE)


def _http_date(text: str | None) -> float | None:
    """An HTTP date, which counts whole seconds, as the middle of the second it names."""
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp() + 0.5
    except (TypeError, ValueError):
        return None


async def check_token(
    settings: ClientSettings,
    answer: Answer,
    stack: AsyncExitStack,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[Check, ApiSession | None]:
    """Who the token speaks for, asked of the replica that answered; the session, open in
    ``stack``, for the checks that follow."""
    try:
        credentials = await resolve_credentials(settings, transport=transport)
        session = await stack.enter_async_context(
            ApiSession(
                answer.server,
                credentials.token,
                retry_for=settings.retry_for,
                user_agent=f"fap/{__version__}",
                transport=transport,
                org=settings.org,
                renew=credentials.renew,
            )
        )
        me = await fetch_me(session)
    except FapError as error:
        return failed("token", str(error), error.exit_code), None
    who = _who(me)
    if not me.orgs:
        return warning(
            "token", f"{who}, in no organisation yet: ask an admin of one to invite you."
        ), session
    roles = ", ".join(f"{membership.org}: {membership.role}" for membership in me.orgs)
    return ok("token", f"{who}; {roles}"), session


def _who(me: Me) -> str:
    how = {"session": "signed in", "user": "API token"}.get(me.token_kind, me.token_kind)
    return f"{me.email or me.name or me.user_id} ({how})"


async def check_device(session: ApiSession, home: Path) -> Check:
    """This device's key, as the server knows it: results are sealed to registered keys only."""
    try:
        # Keyring backends may block (D-Bus, a keychain prompt): not on the event loop.
        identity = await asyncio.to_thread(local_identity, home)
        devices = [] if identity is None else await list_devices(session)
    except FapError as error:
        return failed("device key", str(error), error.exit_code)
    if identity is None:
        return warning(
            "device key",
            "this device has no key yet: the first fap upload makes one and registers it.",
        )
    recipient = identity.recipient
    device = next((device for device in devices if device.recipient == recipient), None)
    if device is None:
        return warning(
            "device key",
            f"{recipient[:12]}… is not registered yet, so no result is sealed to it: the next "
            "fap upload registers it.",
        )
    if device.revoked_at is not None:
        return failed(
            "device key",
            f"this device's key ({device.name}, {device.id}) was revoked, so no result is sealed "
            "to it any more: keep a copy (fap keys export) if old results must still open, "
            "then remove it (keyring service 'fap', user 'device-identity', or device.key in "
            "the fap home); the next fap upload makes and registers a new one.",
        )
    return ok("device key", f"registered as {device.name} ({device.id})")


def check_clock(answer: Answer) -> Check:
    if answer.date is None:
        return warning("clock", "the server sent no Date header, so clocks cannot be compared.")
    skew = answer.local - answer.date
    off = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the server's"
    fix = "set it right (NTP: timedatectl set-ntp true, or the system's date settings)"
    if abs(skew) > CLOCK_FAIL_SECONDS:
        return failed("clock", f"this clock is {off}: sign-ins and presigned URLs fail; {fix}.")
    if abs(skew) > CLOCK_WARN_SECONDS:
        return warning("clock", f"this clock is {off}; {fix}.")
    return ok("clock", f"within {max(1.0, abs(skew)):.0f} s of the server's")
