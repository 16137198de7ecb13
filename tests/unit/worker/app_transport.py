"""The wire between a worker under test and the real server app, in-process.

Every request passes through to the app (``httpx.ASGITransport``: the API and the local blob
store's signed URLs alike) and is recorded, so a test can say what the worker sent. Only the faults
the app cannot produce by itself are injected here, on chosen requests: a 503 from a server that is
starting (answered before the app sees the request) and an answer lost on the way back (the app
did the work, the worker hears nothing). Everything else a test needs — a lapsed lease, an expired
URL, a corrupted blob — it brings about in the real app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec
from litestar import Litestar

from fap.api import ErrorBody

__all__ = ("AppTransport", "Hold", "Match", "Sent")

Match = Callable[[httpx.Request], bool]


@dataclass
class Sent:
    """One request the worker sent, and the status it got (None while in flight or lost)."""

    method: str
    path: str
    body: bytes
    status: int | None = None


@dataclass
class Hold:
    """The next request ``matches`` accepts waits at the wire until the test releases it."""

    matches: Match
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class _Fault:
    matches: Match
    left: int
    status: int | None  # answered in the app's place; None: the app answers, the answer is lost


class AppTransport(httpx.AsyncBaseTransport):
    def __init__(self, app: Litestar) -> None:
        self._app = httpx.ASGITransport(app=app)
        self.sent: list[Sent] = []
        self._faults: list[_Fault] = []
        self._holds: list[Hold] = []
        self._changed = asyncio.Event()

    def refuse(self, matches: Match, *, times: int = 1, status: int = 503) -> None:
        """Answer the next ``times`` matching requests with ``status`` before the app sees them."""
        self._faults.append(_Fault(matches, times, status))

    def lose_answer(self, matches: Match, *, times: int = 1) -> None:
        """Let the app handle the next ``times`` matching requests, then drop the connection."""
        self._faults.append(_Fault(matches, times, None))

    def hold(self, matches: Match) -> Hold:
        held = Hold(matches)
        self._holds.append(held)
        return held

    def change(self) -> asyncio.Event:
        """Set at the next request sent or answered. Take it *before* looking at the state it
        may change, so that a change between the look and the wait is not missed."""
        return self._changed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = Sent(request.method, request.url.path, await request.aread())
        self.sent.append(sent)
        self._notify()
        try:
            if held := self._take_hold(request):
                held.reached.set()
                await held.released.wait()
            fault = self._take_fault(request)
            if fault is not None and fault.status is not None:
                sent.status = fault.status
                return _refusal(fault.status)
            response = await self._app.handle_async_request(request)
            if fault is not None:
                await response.aclose()
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
            sent.status = response.status_code
            return response
        finally:
            self._notify()

    async def aclose(self) -> None:
        await self._app.aclose()

    def _take_hold(self, request: httpx.Request) -> Hold | None:
        for held in self._holds:
            if held.matches(request):
                self._holds.remove(held)
                return held
        return None

    def _take_fault(self, request: httpx.Request) -> _Fault | None:
        for fault in self._faults:
            if fault.left > 0 and fault.matches(request):
                fault.left -= 1
                return fault
        return None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _refusal(status: int) -> httpx.Response:
    body = ErrorBody(status_code=status, detail="The server is starting; try again shortly.")
    return httpx.Response(
        status, content=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
    )
