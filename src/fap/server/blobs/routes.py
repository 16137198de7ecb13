"""The local blob store's HTTP face: presigned PUT and GET under ``/blobs/{key}``.

No bearer token here: the signed query string is the whole authority, as with S3.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Router, get, put
from litestar.di import NamedDependency, Provide
from litestar.exceptions import InternalServerException
from litestar.params import FromPath, FromQuery
from litestar.response import File

from fap.api import BLOBS
from fap.server.blobs.local import LocalBlobStore
from fap.server.problems import BadRequest, NotFound

__all__ = ("blob_router",)


@put("/{key:path}", status_code=200, request_max_body_size=None, include_in_schema=False)
async def put_blob(
    request: Request[Any, Any, Any],
    key: FromPath[str],
    blobs: NamedDependency[LocalBlobStore],
    exp: FromQuery[str | None] = None,
    size: FromQuery[str | None] = None,
    sha256: FromQuery[str | None] = None,
    sig: FromQuery[str | None] = None,
) -> None:
    key = key.lstrip("/")
    exact, checksum = blobs.authorize_put(key, exp, size, sha256, sig)
    announced = request.headers.get("content-length")
    if announced is not None:
        if not announced.isdigit():
            raise BadRequest("The Content-Length header is not a number.")
        if int(announced) != exact:
            raise BadRequest(
                f"The upload's {announced} bytes differ from the {exact} this URL was signed "
                "for; nothing was stored."
            )
    try:
        await blobs.receive(key, request.stream(), exact, checksum)
    except InternalServerException:
        # Litestar's word for a client that went away half-way through its body.
        raise BadRequest("The upload was cut short; nothing was stored.") from None


@get("/{key:path}", include_in_schema=False)
async def get_blob(
    key: FromPath[str],
    blobs: NamedDependency[LocalBlobStore],
    exp: FromQuery[str | None] = None,
    sig: FromQuery[str | None] = None,
) -> File:
    key = key.lstrip("/")
    blobs.authorize_get(key, exp, sig)
    path = blobs.path(key)
    try:
        stat = await asyncio.to_thread(path.stat)
    except FileNotFoundError:
        raise NotFound(f"Nothing is stored at {key}.") from None
    return File(
        path,
        stat_result=stat,
        media_type="application/octet-stream",
        content_disposition_type="inline",
    )


def blob_router(store: LocalBlobStore) -> Router:
    async def provide() -> LocalBlobStore:
        return store

    return Router(
        path=BLOBS,
        route_handlers=[put_blob, get_blob],
        dependencies={"blobs": Provide(provide)},
    )
