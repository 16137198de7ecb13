"""The embedded object store: files under ``DATA_DIR/blobs``, reached through URLs this server signs.

A PUT is written to a temporary file beside the blobs and renamed into place once complete and
checked (its size and, when signed, its SHA-256), so a reader never sees half an object and a
refused PUT leaves nothing behind. A sealed object (a completed job's result) is read-only: no PUT
replaces it, whatever its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl, quote, urlencode

from fap.api import BLOBS
from fap.server.blobs.base import SignedPut, StoredBlob, check_key, check_prefix, check_sha256
from fap.server.blobs.signing import UrlSigner, load_or_create_secret
from fap.server.errors import BadRequest, BlobStoreUnavailable, Conflict, Forbidden, Sealed

__all__ = ("LocalBlobStore",)

_UNSIGNED = (
    "This blob URL is not signed: it needs exp and sig (and size for a PUT); "
    "ask the API for a presigned URL."
)
_ALTERED = "This blob URL's signature does not match; it was altered."
_SIGNATURE = re.compile(rb"[0-9a-f]{64}")
# Read-only for the server's user: the mode of a sealed object, and how one is told apart.
_SEALED_MODE = 0o400
# Writes go to the disk in batches of at least this much, each on a worker thread.
_WRITE_BATCH = 1024 * 1024
# A GET's body goes out in pieces of this size: bounded memory whatever the object's size.
_READ_PIECE = 1024 * 1024


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
        # Held while an object is moved into place or sealed: a PUT that was checked before
        # its key was sealed cannot then replace the sealed object.
        self._placing = asyncio.Lock()

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
        # A closed store signs and checks no URL: a request still in flight while the server
        # stops is answered 503 (retried elsewhere), as with S3.
        self._signer = None

    @property
    def signer(self) -> UrlSigner:
        if self._signer is None:
            raise BlobStoreUnavailable(
                "The local blob store is not open: the server is starting or stopping."
            )
        return self._signer

    async def presign_put(
        self, key: str, size: int, ttl: float, *, sha256: str | None = None
    ) -> SignedPut:
        if sha256 is not None:
            check_sha256(sha256)
        url = self._url("PUT", key, ttl, size, sha256)
        return SignedPut(url=url, headers={"Content-Length": str(size)})

    async def put(self, key: str, data: bytes, sha256: str) -> None:
        async def body() -> AsyncIterator[bytes]:
            yield data

        await self.receive(key, body(), len(data), check_sha256(sha256))

    async def presign_get(self, key: str, ttl: float) -> str:
        return self._url("GET", key, ttl, None, None)

    async def size(self, key: str) -> int | None:
        found = await self.stat(key)
        return None if found is None else found.st_size

    async def stat(self, key: str) -> os.stat_result | None:
        """The stat of the object at ``key``; None if there is none (or a directory is there)."""
        return await asyncio.to_thread(_regular_file, self.path(key))

    async def read(
        self, key: str, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes of the object at ``key`` from ``offset`` on, ``length`` of them (None: to its
        end; fewer where it ends first), a piece at a time; the file is opened at the first piece
        asked for and closed when the iteration ends, however it ends.

        Opened on a thread, and closed there too should the request be given up while it opens:
        a file opened for a request that is gone would otherwise stay open until the collector
        finds it (a thread cannot be cancelled; what it returns must be taken care of).
        """
        opening = asyncio.ensure_future(asyncio.to_thread(_open_for_reading, self.path(key)))
        try:
            handle = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise
        try:
            handle.seek(offset)  # on the loop: a seek moves a file position, it reads nothing
            left = sys.maxsize if length is None else length
            while left > 0 and (
                piece := await asyncio.to_thread(handle.read, min(_READ_PIECE, left))
            ):
                left -= len(piece)
                yield piece
        finally:
            handle.close()

    async def describe(self, key: str) -> StoredBlob | None:
        def digest() -> StoredBlob | None:
            path = self.path(key)
            try:
                with path.open("rb") as handle:
                    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                        return None
                    sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
                    return StoredBlob(size=handle.tell(), sha256=sha256)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None

        # On a worker thread: hashing a large result takes a while.
        return await asyncio.to_thread(digest)

    async def seal(self, key: str) -> None:
        def seal() -> None:
            # Deleted meanwhile (its retention ended): nothing is left to guard.
            with contextlib.suppress(FileNotFoundError):
                self.path(key).chmod(_SEALED_MODE)

        async with self._placing:
            await asyncio.to_thread(seal)

    async def delete_prefix(self, prefix: str) -> None:
        # Replicas (or clean-up passes) may delete the same prefix at once: whatever another one
        # removed first is simply gone, never an error.
        check_prefix(prefix)

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
        return self.root.joinpath(*check_key(key).split("/"))

    def authorize(self, method: str, key: str, query: bytes) -> tuple[int | None, str | None]:
        """Check a presigned URL's query string, as sent, for ``method`` on ``key``; answer the
        size and SHA-256 it was signed for (None for a GET). Nothing in it is parsed until its
        signature is found to cover exactly those bytes."""
        signed, separator, signature = query.rpartition(b"&sig=")
        if not separator or not signed:
            raise BadRequest(_UNSIGNED)
        if not _SIGNATURE.fullmatch(signature) or not self.signer.verify(
            signature, method, key, signed
        ):
            raise Forbidden(_ALTERED)
        # These bytes are the server's own: well-formed, each value once, integers as written.
        values = dict(parse_qsl(signed.decode("ascii"), strict_parsing=True))
        if int(values["exp"]) < self._clock():
            raise Forbidden("This blob URL expired; ask the API for a new one.")
        if method == "GET":
            return None, None
        return int(values["size"]), values.get("sha256")

    async def receive(
        self, key: str, body: AsyncIterator[bytes], size: int, sha256: str | None = None
    ) -> int:
        """Store ``body`` at ``key`` if it is exactly ``size`` bytes (with the SHA-256 ``sha256``,
        when given); otherwise refuse it and store nothing. Answer its size."""
        final = self.path(key)
        temp = self._temp / secrets.token_hex(8)
        handle = await asyncio.to_thread(_create_private, temp)
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
            async with self._placing:
                await asyncio.to_thread(_move_into_place, temp, final, key)
        except BaseException:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(partial(temp.unlink, missing_ok=True))
            raise
        return received

    def _url(self, method: str, key: str, ttl: float, size: int | None, sha256: str | None) -> str:
        self.path(key)  # refuse a bad key before signing it
        values: dict[str, str | int] = {"exp": math.ceil(self._clock() + ttl)}
        if size is not None:
            values["size"] = size
        if sha256 is not None:
            values["sha256"] = sha256
        query = urlencode(values)
        signature = self.signer.sign(method, key, query.encode("ascii"))
        return f"{self._base_url}{BLOBS}/{quote(key)}?{query}&sig={signature}"


def _open_for_reading(path: Path) -> BinaryIO:
    # Unbuffered: reads come in large pieces anyway, and a range's last one then takes from the
    # disk no more than it asks for, where a buffer would read ahead past the range's end.
    return path.open("rb", buffering=0)


def _close_opened(opening: asyncio.Future[BinaryIO]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def _regular_file(path: Path) -> os.stat_result | None:
    """The stat of the object at ``path``; None if there is none, or a directory is there."""
    try:
        found = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return found if stat.S_ISREG(found.st_mode) else None


def _write(handle: BinaryIO, hash_update: Callable[[bytes], None], data: bytes) -> None:
    # On a worker thread: hashing a megabyte takes milliseconds, too long for the event loop.
    hash_update(data)
    handle.write(data)


def _move_into_place(temp: Path, final: Path, key: str) -> None:
    # Under LocalBlobStore._placing, so that no seal comes between the check and the rename.
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if stat.S_IMODE(final.stat().st_mode) == _SEALED_MODE:
            raise Sealed(f"The object at {key} is sealed; nothing replaces it.")
    try:
        _make_dirs(final.parent)
        temp.replace(final)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        # Only a URL signed for a key no object of fap's has (a directory's) can get here.
        raise Conflict(f"The key {key} names a directory, not an object.") from None


def _create_private(path: Path) -> BinaryIO:
    """A new file open for writing, 0600 whatever the umask (it is someone's data)."""
    return os.fdopen(
        os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "wb"
    )


def _make_dirs(directory: Path) -> None:
    """``directory`` and any missing parents, each 0700: ``mkdir(parents=True)`` would give the
    parents the umask's mode instead."""
    if directory.is_dir():
        return
    _make_dirs(directory.parent)
    with contextlib.suppress(FileExistsError):  # another PUT made it meanwhile
        directory.mkdir(mode=0o700)


def _remove_tree(path: Path) -> None:
    """shutil.rmtree, where a file another deleter removed first is no error."""

    def unless_gone(function: object, name: object, error: BaseException) -> None:
        if not isinstance(error, FileNotFoundError):
            raise error

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=unless_gone)
    else:  # onexc is 3.12's; onerror, its predecessor, passes exc_info
        shutil.rmtree(path, onerror=lambda f, n, info: unless_gone(f, n, info[1]))
