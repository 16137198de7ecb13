"""The embedded object store: files under ``DATA_DIR/blobs``, reached through URLs this server signs.

A PUT is written to a temporary file beside the blobs and renamed into place once complete and
checked (its size and, when signed, its SHA-256), so a reader never sees half an object and a
refused PUT leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from fap.api import BLOBS
from fap.server.blobs.base import SignedPut
from fap.server.blobs.signing import UrlSigner, load_or_create_secret
from fap.server.problems import BadRequest, Forbidden

__all__ = ("LocalBlobStore",)

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_MAX_KEY = 512
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UNSIGNED = (
    "This blob URL is not signed: it needs exp and sig (and size for a PUT); "
    "ask the API for a presigned URL."
)
_ALTERED = "This blob URL's signature does not match; it was altered."
# Writes go to the disk in batches of at least this much, each on a worker thread.
_WRITE_BATCH = 1024 * 1024


class LocalBlobStore:
    def __init__(
        self,
        root: Path,
        secret_path: Path,
        base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self._secret_path = secret_path
        self._base_url = base_url.rstrip("/")
        self._clock = clock
        self._temp = root / ".incoming"
        self._signer: UrlSigner | None = None
        self._signing_key: bytes | None = None

    def use_signing_key(self, key: bytes) -> None:
        """Sign with ``key`` (a server secret, see fap.server.secrets), not the data dir's own."""
        self._signing_key = key

    async def open(self) -> None:
        def prepare() -> bytes:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            # PUTs cut short by a crash left their temporary files here; none is still in flight.
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp.mkdir(mode=0o700)
            return self._signing_key or load_or_create_secret(self._secret_path)

        self._signer = UrlSigner(await asyncio.to_thread(prepare))

    async def close(self) -> None:
        return None

    @property
    def signer(self) -> UrlSigner:
        if self._signer is None:
            raise RuntimeError("LocalBlobStore.open() was not awaited")
        return self._signer

    async def presign_put(
        self, key: str, size: int, ttl: float, *, sha256: str | None = None
    ) -> SignedPut:
        if sha256 is not None and not _SHA256.fullmatch(sha256):
            raise ValueError(f"{sha256!r} is not a lower-case hex SHA-256")
        url = self._url("PUT", key, ttl, size, sha256)
        return SignedPut(url=url, headers={"Content-Length": str(size)})

    async def presign_get(self, key: str, ttl: float) -> str:
        return self._url("GET", key, ttl, None, None)

    async def size(self, key: str) -> int | None:
        try:
            stat = await asyncio.to_thread(self.path(key).stat)
        except FileNotFoundError:
            return None
        return stat.st_size

    async def delete_prefix(self, prefix: str) -> None:
        # Replicas (or clean-up passes) may delete the same prefix at once: whatever another one
        # removed first is simply gone, never an error.
        def delete() -> None:
            directory, _, stem = prefix.rpartition("/")
            base = self.path(directory) if directory else self.root
            try:
                entries = list(base.iterdir())
            except FileNotFoundError:
                return
            for entry in entries:
                if entry == self._temp or not entry.name.startswith(stem):
                    continue
                if entry.is_dir():
                    _remove_tree(entry)
                else:
                    entry.unlink(missing_ok=True)
            # The directories this left empty go too (not the top one, uploads/): else every
            # upload the clean-up deleted would leave its empty directory behind forever.
            while base != self.root and base.parent != self.root:
                try:
                    base.rmdir()
                except FileNotFoundError:
                    pass  # another deleter removed it first
                except OSError:
                    return  # not empty: a PUT just stored something here
                base = base.parent

        await asyncio.to_thread(delete)

    def path(self, key: str) -> Path:
        """Where ``key`` lives; a key that could escape the blob directory is refused."""
        if len(key) > _MAX_KEY or not _KEY.fullmatch(key):
            raise BadRequest(f"{key[:80]!r} is not a valid blob key.")
        return self.root.joinpath(*key.split("/"))

    def authorize_get(self, key: str, exp: str | None, sig: str | None) -> None:
        """Check a presigned GET's parameters."""
        if exp is None or sig is None:
            raise BadRequest(_UNSIGNED)
        if not self.signer.verify(sig, "GET", key, _integer(exp)):
            raise Forbidden(_ALTERED)
        self._check_expiry(_integer(exp))

    def authorize_put(
        self,
        key: str,
        exp: str | None,
        size: str | None,
        sha256: str | None,
        sig: str | None,
    ) -> tuple[int, str | None]:
        """Check a presigned PUT's parameters; answer the signed size and SHA-256."""
        if exp is None or sig is None or size is None:
            raise BadRequest(_UNSIGNED)
        expires, exact = _integer(exp), _integer(size)
        if not self.signer.verify(sig, "PUT", key, expires, exact, sha256):
            raise Forbidden(_ALTERED)
        self._check_expiry(expires)
        return exact, sha256

    async def receive(
        self, key: str, body: AsyncIterator[bytes], size: int, sha256: str | None = None
    ) -> int:
        """Store ``body`` at ``key`` if it is exactly ``size`` bytes (with the SHA-256 ``sha256``,
        when given); otherwise refuse it and store nothing. Answer its size."""
        final = self.path(key)
        temp = self._temp / secrets.token_hex(8)
        handle = await asyncio.to_thread(temp.open, "wb")
        digest = hashlib.sha256()
        received = 0
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for piece in body:
                received += len(piece)
                if received > size:
                    raise BadRequest(
                        f"The upload exceeds the {size} bytes this URL allows; nothing was stored."
                    )
                pending.append(piece)
                pending_size += len(piece)
                if pending_size >= _WRITE_BATCH:
                    await asyncio.to_thread(_write, handle, digest.update, b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await asyncio.to_thread(_write, handle, digest.update, b"".join(pending))
            await asyncio.to_thread(handle.close)
            if received != size:
                raise BadRequest(
                    f"The upload holds {received} bytes, not the {size} this URL was signed for; "
                    "nothing was stored."
                )
            if sha256 is not None and digest.hexdigest() != sha256:
                raise BadRequest(
                    "The upload's bytes do not match the SHA-256 this URL was signed for; they "
                    "were corrupted on the way, and nothing was stored."
                )
            await asyncio.to_thread(_move_into_place, temp, final)
        except BaseException:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(partial(temp.unlink, missing_ok=True))
            raise
        return received

    def _check_expiry(self, expires: int) -> None:
        if expires < self._clock():
            raise Forbidden("This blob URL expired; ask the API for a new one.")

    def _url(self, method: str, key: str, ttl: float, size: int | None, sha256: str | None) -> str:
        self.path(key)  # refuse a bad key before signing it
        expires = math.ceil(self._clock() + ttl)
        query: dict[str, str | int] = {"exp": expires}
        if size is not None:
            query["size"] = size
        if sha256 is not None:
            query["sha256"] = sha256
        query["sig"] = self.signer.sign(method, key, expires, size, sha256)
        return f"{self._base_url}{BLOBS}/{quote(key)}?{urlencode(query)}"


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest("This blob URL's exp and size parameters must be integers.") from None


def _write(handle: BinaryIO, hash_update: Callable[[bytes], None], data: bytes) -> None:
    # On a worker thread: hashing a megabyte takes milliseconds, too long for the event loop.
    hash_update(data)
    handle.write(data)


def _move_into_place(temp: Path, final: Path) -> None:
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp.replace(final)


def _remove_tree(path: Path) -> None:
    """shutil.rmtree, where a file another deleter removed first is no error."""

    def unless_gone(function: object, name: object, error: BaseException) -> None:
        if not isinstance(error, FileNotFoundError):
            raise error

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=unless_gone)
    else:  # onexc is 3.12's; onerror, its predecessor, passes exc_info
        shutil.rmtree(path, onerror=lambda f, n, info: unless_gone(f, n, info[1]))
