"""Checks of request fields the wire types cannot express; each failure is one sentence (400)."""

from __future__ import annotations

import math
import re

from fap.api import ENGINE_NAME_RULE, is_engine_name
from fap.server.errors import BadRequest

__all__ = (
    "check_domain",
    "check_email",
    "check_engine",
    "check_org_name",
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


_EMAIL = re.compile(
    r"[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_ORG_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_email(value: str) -> str:
    """An email address, lower-cased: how sign-ins and invitations are matched."""
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise BadRequest(f"{value[:100]!r} is not an email address.")
    return email


def check_domain(value: str) -> str:
    domain = value.strip().lower().removeprefix("@")
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
        raise BadRequest(f"{value[:100]!r} is not an email domain, such as example.com.")
    return domain


def check_org_name(value: str) -> str:
    """Lower-case letters, digits and dashes, 1 to 63: safe in a path, a header and a shell."""
    if not _ORG_NAME.fullmatch(value):
        raise BadRequest(
            f"{value[:100]!r} cannot name an organisation: use 1 to 63 lower-case letters, digits "
            "and dashes, starting and ending with a letter or digit."
        )
    return value
