"""The object store seam: presigned URLs for clients and workers, sizes and deletes for the server.

Clients and workers never hold storage credentials; every byte they move goes through a URL signed
here for one object, one method and a short time — for a PUT, for an exact size and, where the
caller knows it, the SHA-256 of the bytes, so the store itself refuses a corrupted body. A result,
once its job is complete, is sealed: the local store refuses any PUT to it; on S3, whose objects
cannot be locked so, its URLs are bound to its SHA-256 and live no longer than the lease.
Implementations: the local directory served by this server (:mod:`fap.server.blobs.local`) and
any S3 API (:mod:`fap.server.blobs.s3`).

The errors of the contract, the same from every store (fap.server.errors):
- a key outside the layout below, or a checksum that is not a lower-case hex SHA-256, is
  :class:`BadRequest` — checked by :func:`check_key` and :func:`check_sha256`, before any I/O;
- a store that fails or cannot be reached, or is not open (before ``open``, after ``close``), is
  :class:`BlobStoreUnavailable`: a 503 the caller retries, never a 500;
- nothing stored at a key is no error: ``size`` and ``describe`` answer None;
- a PUT to a sealed object is refused by the store that can enforce it (:class:`Sealed`, a 409).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fap.server.errors import BadRequest

__all__ = (
    "BlobStore",
    "SignedPut",
    "StoredBlob",
    "check_key",
    "check_prefix",
    "check_sha256",
    "chunk_key",
    "pack_key",
    "result_key",
    "upload_prefix",
)

# Segments of letters, digits, '.', '_' and '-', none empty nor starting with '.': no key can
# climb out of the local store's directory, and every store accepts the same keys.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_MAX_KEY = 512
_SHA256 = re.compile(r"[0-9a-f]{64}")


def upload_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def chunk_key(upload_id: str, seq: int) -> str:
    return f"uploads/{upload_id}/chunks/{seq:08d}"


def result_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/result.age"


def pack_key(pack_id: str) -> str:
    """Where a pack lives: outside every upload's prefix, since it holds many uploads' chunks."""
    return f"packs/{pack_id}"


def check_key(key: str) -> str:
    """``key`` itself if it is a key of the layout; BadRequest if not."""
    if len(key) > _MAX_KEY or not _KEY.fullmatch(key):
        raise BadRequest(f"{key[:80]!r} is not a valid blob key.")
    return key


def check_prefix(prefix: str) -> str:
    """``prefix`` itself if it is a key, or a key and '/', or empty; BadRequest if not."""
    if stem := prefix.removesuffix("/"):
        check_key(stem)
    return prefix


def check_sha256(sha256: str) -> str:
    """``sha256`` itself if it is a SHA-256 in lower-case hex; BadRequest if not."""
    if not _SHA256.fullmatch(sha256):
        raise BadRequest(f"{sha256[:80]!r} is not a SHA-256 in lower-case hexadecimal digits.")
    return sha256


@dataclass(frozen=True, slots=True)
class SignedPut:
    """A presigned PUT: its URL, and the headers the request must carry exactly as given."""

    url: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A stored object: its size, and its SHA-256 (hex) where the store can tell it."""

    size: int
    sha256: str | None


class BlobStore(Protocol):
    async def open(self) -> None:
        """Prepare the store (directories, secrets, clients) before the first request."""

    async def close(self) -> None: ...

    async def presign_put(
        self, key: str, size: int, ttl: float, *, sha256: str | None = None
    ) -> SignedPut:
        """A PUT that stores one object of exactly ``size`` bytes at ``key`` for ``ttl`` seconds;
        with ``sha256`` (hex), only bytes with that digest."""
        ...

    async def presign_get(self, key: str, ttl: float) -> str:
        """A URL that reads the object at ``key`` for ``ttl`` seconds."""
        ...

    async def put(self, key: str, data: bytes, sha256: str) -> None:
        """Store ``data``, whose SHA-256 (hex) is ``sha256``, at ``key``, replacing what an unsealed
        key holds: the server's own write, for results small enough to come with their completion.
        A sealed key refuses it (Sealed)."""
        ...

    async def size(self, key: str) -> int | None:
        """The stored object's size in bytes, or None when nothing is stored there."""
        ...

    async def describe(self, key: str) -> StoredBlob | None:
        """The stored object's size and SHA-256, or None when nothing is stored there. S3 tells
        the SHA-256 of an object PUT with one (x-amz-checksum-sha256); the local store reads it."""
        ...

    async def seal(self, key: str) -> None:
        """No PUT may replace the object at ``key`` any more (where the store can enforce it)."""
        ...

    async def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with ``prefix``."""
        ...
