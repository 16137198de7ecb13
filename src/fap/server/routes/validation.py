"""Checks of request fields the wire types cannot express; each failure is one sentence (400)."""

from __future__ import annotations

import math
import re

from fap.api import ENGINE_NAME_RULE, is_engine_name
from fap.server.errors import BadRequest

__all__ = (
    "check_engine",
    "check_sha256",
    "check_text",
    "check_timeout",
    "check_upload_name",
)

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def check_text(value: str, what: str, max_length: int) -> str:
    """A non-blank string of at most ``max_length`` characters, storable as UTF-8."""
    if not value.strip():
        raise BadRequest(f"The {what} must not be empty.")
    if len(value) > max_length:
        raise BadRequest(f"The {what} is {len(value)} characters long; at most {max_length} fit.")
    if "\x00" in value:
        raise BadRequest(f"The {what} contains a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"The {what} is not valid Unicode (a lone surrogate).") from None
    return value


def check_upload_name(name: str) -> str:
    check_text(name, "file name", 1024)
    if set(name.strip()) <= {"/", "\\", "."}:
        raise BadRequest(f"{name!r} is not a file name.")
    return name


def check_sha256(value: str, what: str) -> str:
    if not _SHA256.fullmatch(value):
        raise BadRequest(f"The {what} must be 64 hexadecimal digits (a SHA-256).")
    return value.lower()


def check_engine(engine: str) -> str:
    if not is_engine_name(engine):
        raise BadRequest(
            f"{engine[:100]!r} is not an engine: write name@version, for example size@1 "
            f"({ENGINE_NAME_RULE})."
        )
    return engine


def check_timeout(timeout: float, limit: float) -> float:
    """A long-poll's timeout, capped at the server's limit."""
    if math.isnan(timeout) or timeout < 0:
        raise BadRequest("The timeout must be a number of seconds, 0 or more.")
    return min(timeout, limit)
