"""The embedded object store: files under ``DATA_DIR/blobs``, reached through URLs this server signs.

A PUT is written to a temporary file beside the blobs and renamed into place once complete, so a
reader never sees half an object and a refused PUT leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from urllib.parse import quote, urlencode

from fap.api import BLOBS
from fap.server.blobs.signing import UrlSigner, load_or_create_secret
from fap.server.problems import BadRequest, Forbidden

__all__ = ("LocalBlobStore",)

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_MAX_KEY = 512
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

    async def open(self) -> None:
        def prepare() -> bytes:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            # PUTs cut short by a crash left their temporary files here; none is still in flight.
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp.mkdir(mode=0o700)
            return load_or_create_secret(self._secret_path)

        self._signer = UrlSigner(await asyncio.to_thread(prepare))

    async def close(self) -> None:
        return None

    @property
    def signer(self) -> UrlSigner:
        if self._signer is None:
            raise RuntimeError("LocalBlobStore.open() was not awaited")
        return self._signer

    async def presign_put(self, key: str, max_size: int, ttl: float) -> str:
        return self._url("PUT", key, ttl, max_size)

    async def presign_get(self, key: str, ttl: float) -> str:
        return self._url("GET", key, ttl, None)

    async def size(self, key: str) -> int | None:
        try:
            stat = await asyncio.to_thread(self.path(key).stat)
        except FileNotFoundError:
            return None
        return stat.st_size

    async def delete_prefix(self, prefix: str) -> None:
        def delete() -> None:
            directory, _, stem = prefix.rpartition("/")
            base = self.path(directory) if directory else self.root
            if not base.is_dir():
                return
            for entry in base.iterdir():
                if entry == self._temp or not entry.name.startswith(stem):
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)

        await asyncio.to_thread(delete)

    def path(self, key: str) -> Path:
        """Where ``key`` lives; a key that could escape the blob directory is refused."""
        if len(key) > _MAX_KEY or not _KEY.fullmatch(key):
            raise BadRequest(f"{key[:80]!r} is not a valid blob key.")
        return self.root.joinpath(*key.split("/"))

    def authorize(
        self, method: str, key: str, exp: str | None, max_size: str | None, sig: str | None
    ) -> int | None:
        """Check a presigned URL's parameters; answer its size bound (None for a GET)."""
        if exp is None or sig is None or (method == "PUT" and max_size is None):
            raise BadRequest(
                "This blob URL is not signed: it needs exp, sig (and max for a PUT); "
                "ask the API for a presigned URL."
            )
        try:
            expires = int(exp)
            bound = int(max_size) if method == "PUT" and max_size is not None else None
        except ValueError:
            raise BadRequest("This blob URL's exp and max parameters must be integers.") from None
        if not self.signer.verify(sig, method, key, expires, bound):
            raise Forbidden("This blob URL's signature does not match; it was altered.")
        if expires < self._clock():
            raise Forbidden("This blob URL expired; ask the API for a new one.")
        return bound

    async def receive(self, key: str, body: AsyncIterator[bytes], max_size: int) -> int:
        """Store ``body`` at ``key`` unless it exceeds ``max_size`` bytes; answer its size."""
        final = self.path(key)
        temp = self._temp / secrets.token_hex(8)
        handle = await asyncio.to_thread(temp.open, "wb")
        size = 0
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for piece in body:
                size += len(piece)
                if size > max_size:
                    raise BadRequest(
                        f"The upload exceeds the {max_size} bytes this URL allows; nothing was stored."
                    )
                pending.append(piece)
                pending_size += len(piece)
                if pending_size >= _WRITE_BATCH:
                    await asyncio.to_thread(handle.write, b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await asyncio.to_thread(handle.write, b"".join(pending))
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(_move_into_place, temp, final)
        except BaseException:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(partial(temp.unlink, missing_ok=True))
            raise
        return size

    def _url(self, method: str, key: str, ttl: float, max_size: int | None) -> str:
        self.path(key)  # refuse a bad key before signing it
        expires = math.ceil(self._clock() + ttl)
        query: dict[str, str | int] = {"exp": expires}
        if max_size is not None:
            query["max"] = max_size
        query["sig"] = self.signer.sign(method, key, expires, max_size)
        return f"{self._base_url}{BLOBS}/{quote(key)}?{urlencode(query)}"


def _move_into_place(temp: Path, final: Path) -> None:
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp.replace(final)
