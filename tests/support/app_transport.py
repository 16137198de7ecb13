"""The wire between a client or worker under test and the real server app, in-process.

Every request passes through to the app (``httpx.ASGITransport``: the API and the local blob
store's signed URLs alike) and is recorded, so a test can say what was sent. Only the faults the
app cannot produce by itself are injected here, on chosen requests: a refusal answered before the
app sees the request (a 503 from a server that is starting, an object store that falls over), an
answer lost on the way back (the app did the work, the caller hears nothing), a server that cannot
be reached at all, and a request or an answer held at the wire until the test lets it go — the
test's way of making a link slow at the moment it chooses, never by timing. Everything else a test
needs — a lapsed lease, an expired URL, a corrupted blob — it brings about in the real app.

As behind a real HTTP server, a caller that gives up on a request (its task cancelled) does not
stop the app's handling of it: the handler runs to its end in a task of its own, and only the
answer is dropped. Cancelling the handler instead would cut a store transaction off midway,
which no deployment does to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import msgspec
from litestar import Litestar

from fap.api import ErrorBody

__all__ = ("AppTransport", "Fault", "Hold", "Match", "Outage", "Sent")

Match = Callable[[httpx.Request], bool]


def _anything(request: httpx.Request) -> bool:
    return True


@dataclass
class Sent:
    """One request sent, and the status it got (None while in flight, lost or unreachable)."""

    method: str
    path: str
    body: bytes
    status: int | None = None


@dataclass
class Hold:
    """The next request ``matches`` accepts (with ``every``: each one, until released) waits at
    the wire until the test releases it; with ``answered``, the app handles it and its answer
    waits instead."""

    matches: Match
    answered: bool = False
    every: bool = False
    waiting: int = 0  # requests (or answers) held at the wire now
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class Outage:
    """While it lasts, no request ``matches`` accepts reaches the server: a refused connection."""

    matches: Match
    ended: bool = False

    def end(self) -> None:
        self.ended = True


@dataclass
class Fault:
    """A fault on the next ``left`` matching requests (None: on each, until it ends)."""

    matches: Match
    left: int | None
    status: int | None  # answered in the app's place; None: the app answers, the answer is lost
    detail: str

    def end(self) -> None:
        self.left = 0


class AppTransport(httpx.AsyncBaseTransport):
    def __init__(self, app: Litestar) -> None:
        self._app = httpx.ASGITransport(app=app)
        self.sent: list[Sent] = []
        self._faults: list[Fault] = []
        self._holds: list[Hold] = []
        self._outages: list[Outage] = []
        self._changed = asyncio.Event()
        self._handling: set[asyncio.Task[httpx.Response]] = set()

    # -- faults the test chooses ---------------------------------------------------------------

    def refuse(
        self,
        matches: Match,
        *,
        times: int | None = 1,
        status: int = 503,
        detail: str = "The server is starting; try again shortly.",
    ) -> Fault:
        """Answer the next ``times`` matching requests (None: each, until the fault ends) with
        ``status`` before the app sees them."""
        fault = Fault(matches, times, status, detail)
        self._faults.append(fault)
        return fault

    def lose_answer(self, matches: Match, *, times: int | None = 1) -> Fault:
        """Let the app handle the next ``times`` matching requests, then drop the connection."""
        fault = Fault(matches, times, None, "")
        self._faults.append(fault)
        return fault

    def hold(self, matches: Match, *, answered: bool = False, every: bool = False) -> Hold:
        held = Hold(matches, answered=answered, every=every)
        self._holds.append(held)
        return held

    def outage(self, matches: Match = _anything) -> Outage:
        """Refuse the connection of every matching request until the outage ends."""
        outage = Outage(matches)
        self._outages.append(outage)
        return outage

    # -- watching ------------------------------------------------------------------------------

    def change(self) -> asyncio.Event:
        """Set at the next request sent or answered. Take it *before* looking at the state it
        may change, so that a change between the look and the wait is not missed."""
        return self._changed

    def in_flight(self) -> list[Sent]:
        return [sent for sent in self.sent if sent.status is None]

    async def until(
        self,
        check: Callable[[], bool | Awaitable[bool]],
        what: str,
        *,
        timeout: float = 30.0,
        poll: float | None = None,
    ) -> None:
        """Wait until ``check()`` holds, looking again whenever a request is sent or answered,
        and every ``poll`` seconds for a state that sends no word (a file written to disk).
        ``timeout`` is a deadline for a test that would otherwise hang, not a measure."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self.change()
            holds = check()
            if await holds if inspect.isawaitable(holds) else holds:
                return
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left if poll is None else min(left, poll))

    # -- the wire ------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = Sent(request.method, request.url.path, await request.aread())
        self.sent.append(sent)
        self._notify()
        try:
            if any(not o.ended and o.matches(request) for o in self._outages):
                raise httpx.ConnectError("Connection refused.", request=request)
            held = self._take_hold(request)
            if held is not None and not held.answered:
                await self._wait_at(held)
            fault = self._take_fault(request)
            if fault is not None and fault.status is not None:
                sent.status = fault.status
                return _refusal(fault.status, fault.detail)
            response = await self._handled(request)
            if fault is not None:
                await response.aclose()
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            if held is not None and held.answered:
                try:
                    await self._wait_at(held)
                except BaseException:
                    await response.aclose()  # the caller was stopped before it heard
                    raise
            sent.status = response.status_code
            return response
        finally:
            self._notify()

    async def _handled(self, request: httpx.Request) -> httpx.Response:
        """The app's answer; the handling goes on to its end if the caller is cancelled."""
        handling = asyncio.create_task(self._app.handle_async_request(request))
        self._handling.add(handling)
        handling.add_done_callback(self._handling.discard)
        return await asyncio.shield(handling)

    async def drained(self) -> None:
        """Wait until the app has handled every request it was given, those whose callers gave
        up on them too: what the server holds afterwards no longer changes under the test."""
        while self._handling:
            await asyncio.wait(set(self._handling))

    async def aclose(self) -> None:
        # What its caller gave up on and is still running (a long poll, mostly) is stopped, as a
        # server's shutdown stops it; a test that needs such a request's effect waits for
        # drained() first.
        pending = list(self._handling)
        for handling in pending:
            handling.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._app.aclose()

    async def _wait_at(self, held: Hold) -> None:
        held.waiting += 1
        held.reached.set()
        self._notify()
        try:
            await held.released.wait()
        finally:
            held.waiting -= 1

    def _take_hold(self, request: httpx.Request) -> Hold | None:
        self._holds = [held for held in self._holds if not held.released.is_set()]
        for held in self._holds:
            if held.matches(request):
                if not held.every:
                    self._holds.remove(held)
                return held
        return None

    def _take_fault(self, request: httpx.Request) -> Fault | None:
        for fault in self._faults:
            if fault.left != 0 and fault.matches(request):
                if fault.left is not None:
                    fault.left -= 1
                return fault
        return None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _refusal(status: int, detail: str) -> httpx.Response:
    body = ErrorBody(status_code=status, detail=detail)
    return httpx.Response(
        status, content=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
    )
