"""Bearer tokens, ``fap_<kind>_<random>``, shown once, stored as SHA-256 hashes: API tokens
(``user``), processor tokens, sign-in sessions' access tokens and their refresh tokens.

A hash suffices (no salt, no slow KDF): the random part carries 256 bits, so nobody guesses a
token from its hash, and lookup stays one indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

__all__ = ("TokenKind", "hash_token", "new_token", "token_kind")

TokenKind = Literal["user", "processor", "session", "refresh"]
_KINDS: frozenset[str] = frozenset({"user", "processor", "session", "refresh"})


def new_token(kind: TokenKind) -> str:
    return f"fap_{kind}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_kind(token: str) -> str | None:
    """The kind a token's text claims (``user``, ``processor``), or None if it is no fap token."""
    prefix, _, rest = token.partition("_")
    kind, _, random = rest.partition("_")
    if prefix != "fap" or kind not in _KINDS or not random:
        return None
    return kind
