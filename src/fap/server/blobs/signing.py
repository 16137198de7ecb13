"""HMAC-SHA256 signatures of the local blob store's URLs.

A URL grants one method on one key until ``exp`` (UNIX seconds), and for a PUT exactly ``size``
bytes with, when given, the SHA-256 ``sha256``; ``sig`` covers them all, so changing any of them
breaks it. The secret is made once per data
directory and kept there, readable by the server's user alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ("UrlSigner", "load_or_create_secret")

_SECRET_BYTES = 32


def load_or_create_secret(path: Path) -> bytes:
    """The secret stored at ``path``; made (mode 0600, atomically) the first time."""
    with contextlib.suppress(FileNotFoundError):
        return bytes.fromhex(path.read_text().strip())
    secret = secrets.token_bytes(_SECRET_BYTES)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret.hex() + "\n")
    try:
        # link, not rename: if another server made the secret meanwhile, both use that one.
        os.link(temp, path)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    finally:
        temp.unlink()
    return secret


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(
        self,
        method: str,
        key: str,
        expires: int,
        size: int | None = None,
        sha256: str | None = None,
    ) -> str:
        fields = (
            method.upper(),
            key,
            str(expires),
            "" if size is None else str(size),
            sha256 or "",
        )
        message = "\n".join(fields).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(
        self,
        signature: str,
        method: str,
        key: str,
        expires: int,
        size: int | None = None,
        sha256: str | None = None,
    ) -> bool:
        return hmac.compare_digest(signature, self.sign(method, key, expires, size, sha256))
