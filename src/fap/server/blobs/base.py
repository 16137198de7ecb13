"""The object store seam: presigned URLs for clients and workers, sizes and deletes for the server.

Clients and workers never hold storage credentials; every byte they move goes through a URL signed
here for one object, one method, a bounded size and a short time. Implementations: the local
directory served by this server (:mod:`fap.server.blobs.local`); S3 comes as a second one.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ("BlobStore", "chunk_key", "result_key", "upload_prefix")


def upload_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def chunk_key(upload_id: str, seq: int) -> str:
    return f"uploads/{upload_id}/chunks/{seq:08d}"


def result_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/result.age"


class BlobStore(Protocol):
    async def open(self) -> None:
        """Prepare the store (directories, secrets, clients) before the first request."""

    async def close(self) -> None: ...

    async def presign_put(self, key: str, max_size: int, ttl: float) -> str:
        """A URL that stores one object of at most ``max_size`` bytes at ``key`` for ``ttl`` s."""
        ...

    async def presign_get(self, key: str, ttl: float) -> str:
        """A URL that reads the object at ``key`` for ``ttl`` seconds."""
        ...

    async def size(self, key: str) -> int | None:
        """The stored object's size in bytes, or None when nothing is stored there."""
        ...

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with ``prefix``."""
        ...
