"""The request class of the app: strict, bounded decoding of JSON bodies, and hang-ups told apart.

Litestar decodes a body into untyped JSON, then converts it to the declared type *leniently*
(``"100"`` becomes 100) and lets a deeply nested body exhaust the recursion limit (a 500). Here
every route's ``data`` is decoded once, straight into its declared type, with msgspec's strict
rules; the result passes Litestar's own conversion unchanged (it is already of that type).

A client that hangs up before its body is read is normal (a long-poll given up, a process
stopped): Litestar reports it as an internal error; here it is :class:`ClientDisconnected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import InternalServerException
from litestar.types import Receive, ReceiveMessage, Scope, Send
from litestar.types.empty import Empty

from fap.server.errors import BadRequest, ClientDisconnected

__all__ = (
    "MAX_JSON_CONTAINERS",
    "MAX_JSON_DEPTH",
    "FapRequest",
    "decode_body",
    "while_connected",
)

T = TypeVar("T")

# The deepest message of the API nests three levels ({"chunks": [{…}]}); a little room for
# newer peers' fields, and far below the recursion limit a decoder would otherwise meet.
MAX_JSON_DEPTH = 32
# The largest message holds one object per chunk URL asked for (MAX_CHUNK_URLS, 1024).
MAX_JSON_CONTAINERS = 4096


class FapRequest(Request[Any, Any, Any]):
    """Litestar's request, decoding ``data`` strictly and raising ClientDisconnected on a hang-up."""

    __slots__ = ("_decoded", "abandoned")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Set once the client is known to have hung up: a long-poll given it ends at its next
        # wait point (see while_connected).
        self.abandoned = asyncio.Event()
        self._decoded: Any = Empty

        async def receiving() -> ReceiveMessage:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.abandoned.set()
            return message

        super().__init__(scope, receiving, send)

    @property
    def hung_up(self) -> bool:
        return self.abandoned.is_set()

    async def stream(self) -> AsyncGenerator[bytes, None]:
        try:
            async for piece in super().stream():
                yield piece
        except InternalServerException:
            if self.hung_up:
                raise ClientDisconnected from None
            raise

    async def json(self) -> Any:
        """The body as the route's ``data`` type (or as plain JSON for a route without one)."""
        if self._decoded is Empty:
            field = self.route_handler.parsed_data_field
            kind = Any if field is None else field.annotation
            self._decoded = decode_body(await self.body(), kind)
        return self._decoded


async def while_connected(request: FapRequest, work: Awaitable[T | None]) -> T | None:
    """``work`` (a long-poll given ``request.abandoned``, see ``long_poll``), watching for a
    hang-up meanwhile; ClientDisconnected if the client hung up and the poll ended without an
    answer. An answer that came just as the client hung up is still returned, with
    ``request.hung_up`` set: a lease must then be handed back.

    The hang-up does not cancel ``work``: it sets ``request.abandoned``, and the poll gives up at
    its next wait. Cancelled in the middle of a store call, the store's driver would be cut off
    mid-protocol and its pool would log an ERROR closing the connection — for a client that did
    nothing wrong. A cancellation of the request itself (the server is stopping) still goes
    straight through.
    """
    watching = asyncio.ensure_future(_hang_up(request))
    try:
        result = await work
        if not watching.done():
            await asyncio.sleep(0)  # a hang-up that landed meanwhile gets its turn to show
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    if result is None and request.hung_up:
        raise ClientDisconnected
    return result


async def _hang_up(request: FapRequest) -> None:
    """Return once the client has disconnected (its body was read: nothing else comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def decode_body(body: bytes, kind: Any) -> Any:
    """``body`` decoded as ``kind`` with msgspec's strict rules; a 400 sentence if it is not one."""
    _check_structure(body)
    try:
        return msgspec.json.decode(body or b"null", type=kind, strict=True)
    except msgspec.ValidationError as error:
        raise BadRequest(f"The request body is invalid: {_reason(error)}.") from None
    except msgspec.DecodeError as error:
        raise BadRequest(f"The request body is not valid JSON: {_reason(error)}.") from None
    except RecursionError:
        # Unreachable after the depth check; kept so that no body can ever be a 500.
        raise BadRequest("The request body nests too deeply.") from None


def _check_structure(body: bytes) -> None:
    """Refuse a body nested deeper than MAX_JSON_DEPTH or holding more than MAX_JSON_CONTAINERS
    arrays and objects, before a decoder recurses into it.

    Brackets inside strings are text, so strings are cut out first; brackets are counted without
    checking that they match, which the decoder does after. Every step but the last loop runs in
    C, and that loop sees at most 2 * MAX_JSON_CONTAINERS brackets.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return  # the usual case: a message has a handful of brackets
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    if len(brackets) > 2 * MAX_JSON_CONTAINERS:
        raise BadRequest(
            f"The request body holds more than {MAX_JSON_CONTAINERS} arrays and objects."
        )
    depth = 0
    for byte in brackets:
        depth += 1 if byte in _OPENERS else -1
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"The request body nests more than {MAX_JSON_DEPTH} levels deep.")


# A JSON string with its escapes (unterminated: up to the end), written so as not to backtrack.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = bytes(range(256)).translate(None, b"[]{}")
_OPENERS = frozenset(b"[{")


def _reason(error: Exception) -> str:
    """msgspec's message ("Expected `int`, got `str` - at `$.size`") as part of a sentence."""
    text = str(error).rstrip(".").replace(" - at ", " at ")
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text
