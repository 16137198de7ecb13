"""The local blob store's HTTP face: presigned PUT and GET under ``/blobs/{key}``.

No bearer token here: the signed query string is the whole authority, as with S3. A GET may ask
for one byte range of its object (a chunk out of a pack), as from S3: see :func:`_wanted`.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from litestar import MediaType, Request, Response, Router, get, put
from litestar.datastructures import Headers
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream

from fap.api import BLOBS, ErrorBody
from fap.server.blobs.local import LocalBlobStore
from fap.server.errors import BadRequest, NotFound

__all__ = ("blob_router",)

# The one byte range served (RFC 9110 §14.1.2): bytes=FIRST-LAST, bytes=FIRST- or the suffix
# bytes=-LENGTH. A range unit's name is case-insensitive.
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE | re.ASCII)
_OCTETS = "application/octet-stream"


@put("/{key:path}", status_code=200, request_max_body_size=None, include_in_schema=False)
async def put_blob(
    request: Request[Any, Any, Any], key: FromPath[str], blobs: NamedDependency[LocalBlobStore]
) -> None:
    key = key.lstrip("/")
    exact, checksum = blobs.authorize("PUT", key, request.scope["query_string"])
    assert exact is not None  # a PUT is always signed for its size
    announced = request.headers.get("content-length")
    if announced is not None:
        if not announced.isdigit():
            raise BadRequest("The Content-Length header is not a number.")
        if int(announced) != exact:
            raise BadRequest(
                f"The upload's {announced} bytes differ from the {exact} this URL was signed "
                "for; nothing was stored."
            )
    # A client that hangs up half-way is ClientDisconnected (see FapRequest): nothing is stored.
    await blobs.receive(key, request.stream(), exact, checksum)


@get("/{key:path}", include_in_schema=False)
async def get_blob(
    request: Request[Any, Any, Any], key: FromPath[str], blobs: NamedDependency[LocalBlobStore]
) -> Response[Any]:
    key = key.lstrip("/")
    blobs.authorize("GET", key, request.scope["query_string"])
    found = await blobs.stat(key)
    if found is None:
        raise NotFound(f"Nothing is stored at {key}.")
    size = found.st_size
    wanted = _wanted(request.headers, size)
    # Not Litestar's File: it opens the file on a thread that a hang-up can abandon, leaving the
    # file open; the store's reader closes it whenever the request ends.
    if wanted is None:
        return Stream(blobs.read(key), media_type=_OCTETS, headers={"Content-Length": str(size)})
    if not wanted:
        # Answered here, not raised: 416 and its Content-Range belong to this one route's Range
        # protocol, as 206 does; the error tree's statuses are the API's, which every route
        # documents (fap.server.routes.openapi).
        return Response(
            ErrorBody(
                status_code=416,
                detail=f"The range asked for holds no byte of {key}, which is {size} bytes long.",
            ),
            status_code=416,
            media_type=MediaType.JSON,
            headers={"Content-Range": f"bytes */{size}"},
        )
    return Stream(
        blobs.read(key, wanted.start, len(wanted)),
        status_code=206,
        media_type=_OCTETS,
        headers={
            "Content-Length": str(len(wanted)),
            "Content-Range": f"bytes {wanted.start}-{wanted.stop - 1}/{size}",
        },
    )


def _wanted(headers: Headers, size: int) -> range | None:
    """The bytes a GET's Range header asks for of an object of ``size`` bytes: None for the whole
    object (200), an empty range where none of the bytes asked for is there (416).

    A Range header this store does not serve (malformed, several ranges, another unit) is ignored
    and the whole object sent: RFC 9110 lets a server ignore any Range header (§14.2) and an
    invalid one in particular (§14.1.1). A 416 would be wrong for it: that status says a valid
    range missed the object, and a client told so would not know its header was the fault.
    """
    fields = headers.getall("range", [])
    # If-Range wants the range only while the object matches a validator (an ETag, a date) that
    # this store never sends, so none can match: the whole object, as RFC 9110 §13.1.5 says.
    if len(fields) != 1 or "if-range" in headers:
        return None
    match = _RANGE.fullmatch(fields[0].strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # a suffix: the last LENGTH bytes, or all of them if there are fewer
        length = _number(last)
        if not length:
            return range(size, size)  # no byte at all: unsatisfiable (§14.1.1)
        if not size:
            return None  # all of nothing: no Content-Range can name it, so a 200 of no bytes
        return range(max(size - length, 0), size)
    start = _number(first)
    if last and _number(last) < start:
        return None  # LAST before FIRST: invalid, so ignored (§14.1.1)
    end = _number(last) + 1 if last else size
    return range(min(start, size), min(end, size))


def _number(digits: str) -> int:
    """A position or a length as the header writes it, leading zeros and all."""
    digits = digits.lstrip("0") or "0"
    # Nineteen digits are past any object's size already, and int() refuses over 4,300 of them
    # (a header can hold more): a number that long stands for one larger than any object.
    return int(digits) if len(digits) < 19 else sys.maxsize


def blob_router(store: LocalBlobStore) -> Router:
    async def provide() -> LocalBlobStore:
        return store

    return Router(
        path=BLOBS,
        route_handlers=[put_blob, get_blob],
        dependencies={"blobs": Provide(provide)},
    )
