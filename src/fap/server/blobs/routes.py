"""The local blob store's HTTP face: presigned PUT and GET under ``/blobs/{key}``.

No bearer token here: the signed query string is the whole authority, as with S3.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream

from fap.api import BLOBS
from fap.server.blobs.local import LocalBlobStore
from fap.server.errors import BadRequest, NotFound

__all__ = ("blob_router",)


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
) -> Stream:
    key = key.lstrip("/")
    blobs.authorize("GET", key, request.scope["query_string"])
    found = await blobs.stat(key)
    if found is None:
        raise NotFound(f"Nothing is stored at {key}.")
    # Not Litestar's File: it opens the file on a thread that a hang-up can abandon, leaving the
    # file open; the store's reader closes it whenever the request ends.
    return Stream(
        blobs.read(key),
        media_type="application/octet-stream",
        headers={"Content-Length": str(found.st_size)},
    )


def blob_router(store: LocalBlobStore) -> Router:
    async def provide() -> LocalBlobStore:
        return store

    return Router(
        path=BLOBS,
        route_handlers=[put_blob, get_blob],
        dependencies={"blobs": Provide(provide)},
    )
