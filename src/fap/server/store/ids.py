"""Identifiers of stored objects."""

from __future__ import annotations

import secrets
import time

__all__ = ("new_id",)


def new_id() -> str:
    """32 hex digits: 13 of microseconds since the epoch, then 19 random (76 bits).

    Sorting ids sorts by creation (ties on equal timestamps break by id), and nobody can guess
    another organisation's ids.
    """
    return f"{time.time_ns() // 1000:013x}{secrets.token_hex(10)[:19]}"
