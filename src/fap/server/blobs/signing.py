"""HMAC-SHA256 signatures of the local blob store's URLs.

A URL grants one method on one key until ``exp`` (UNIX seconds), and for a PUT exactly ``size``
bytes with, when given, the SHA-256 ``sha256``. ``sig``, last in the query, covers the method, the
key and the exact bytes of the query before it: a URL is checked before any of its values is
parsed, so ``exp=+N`` or ``exp=0N`` (which would parse as N) is refused, not what was signed.
The secret is made once per data directory and kept there, readable by the server's user alone.
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

    def sign(self, method: str, key: str, query: bytes) -> str:
        """The signature of ``method`` on ``key`` with the query string ``query`` (as sent)."""
        message = b"%s\n%s\n%s" % (method.upper().encode(), key.encode(), query)
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, signature: bytes, method: str, key: str, query: bytes) -> bool:
        expected = self.sign(method, key, query).encode()
        return hmac.compare_digest(signature, expected)
