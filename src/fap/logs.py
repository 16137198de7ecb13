"""fap's logging: one stderr handler, and no secret in any line at any level.

A presigned URL is a bearer credential until it expires (its query carries the signature), and a
token or a lease token is one for longer. So nothing fap logs may hold one, at any level. Two
layers make that true:

1. Each known source is fixed where it writes: the request lines of httpx and uvicorn lose their
   URLs' queries (``QueryFreeArgs``); the libraries whose debug lines carry SQL parameters
   (aiosqlite, SQLAlchemy, asyncpg), signed headers and credentials (botocore, aiobotocore) or raw
   headers (httpcore) are held at a level where they write none of it.
2. The handler's formatter passes every finished line, traceback included, through ``redact``:
   queries of URLs, tokens, age identities, ``Bearer`` values and ``name=value`` secrets go, so a
   source nobody knew of yet is covered too.
"""

from __future__ import annotations

import logging
import re
import sys

__all__ = (
    "QueryFreeArgs",
    "RedactingFormatter",
    "configure",
    "guard_sources",
    "redact",
    "without_query",
)

HIDDEN = "[hidden]"

# A URL (scheme://host/path) or an absolute path, then "?" and its query up to a space or quote.
# The path must hold a "/" so that a question in a sentence ("running there? Choose…") stays.
_QUERY = re.compile(r"((?:[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#\"'<>]*)?/[^\s?#\"'<>]*)\?[^\s#\"'<>]*")
_SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    # fap's API and processor tokens: fap_<kind>_<random>.
    (re.compile(r"\b(fap_[a-z]+_)[A-Za-z0-9_-]{16,}"), rf"\1{HIDDEN}"),
    # An age identity: the device key that opens results.
    (re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+"), f"AGE-SECRET-KEY-{HIDDEN}"),
    (re.compile(r"\b(Bearer\s+)[^\s\"',]+", re.IGNORECASE), rf"\1{HIDDEN}"),
    # A signed JWT (an identity provider's ID or access token): header and claims are base64 JSON.
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), f"JWT-{HIDDEN}"),
    # A password in a connection URL: postgresql://user:PASSWORD@host/db.
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{HIDDEN}@"),
    # A database error's statement parameters (SQLAlchemy's "[parameters: (...)]") and the key
    # values a constraint names (PostgreSQL's "Key (lease_token)=(...)").
    (re.compile(r"\[parameters: [^\n]*\]"), f"[parameters: {HIDDEN}]"),
    (
        re.compile(r"\b(Key \([^)\n]*\)=\()[^\n]*?\)( already exists| is not present|$)", re.M),
        rf"\1{HIDDEN})\2",
    ),
    # name=value and "name": "value" for the names that only ever hold secrets.
    (
        re.compile(
            r"(?i)\b((?:x-amz-)?(?:signature|security-token|credential)|sig|(?:\w+_)?lease_token"
            r"|authorization|device_code|(?:\w+_)?(?:password|secret(?:_access)?_key|secret|token))"
            r"([\"']?\s*[:=]\s*[\"']?)(?!\[hidden\])[^\s\"',&;)}\]]+"
        ),
        rf"\1\2{HIDDEN}",
    ),
)


def without_query(url: str) -> str:
    """The URL as fap logs it: scheme, host and path; the query (a signature) never."""
    return url.partition("?")[0]


def redact(text: str) -> str:
    """``text`` with every URL's query and every secret fap knows the shape of taken out."""
    text = _QUERY.sub(r"\1", text)
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class QueryFreeArgs(logging.Filter):
    """On a logger whose lines name URLs: each non-numeric argument loses its query.

    The arguments are rewritten rather than the message, so a formatter that reads them by
    position (uvicorn's access formatter does) still finds them where it expects.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_query_free(arg) for arg in record.args)
        return True


def _query_free(arg: object) -> object:
    if arg is None or isinstance(arg, int | float):
        return arg  # numbers stay numbers, for %d
    return redact(str(arg))


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then redacts the whole line: message, traceback and stack alike."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# Libraries whose lines name URLs with their queries, at any level.
_URL_LOGGERS = ("httpx", "uvicorn.access")
# Libraries whose lines below this level hold secrets: SQL parameters (a lease token is one),
# signed headers, string-to-sign and credentials, raw request and response headers.
_HELD_AT = {
    "aiosqlite": logging.INFO,
    "sqlalchemy": logging.WARNING,
    "asyncpg": logging.INFO,
    "botocore": logging.INFO,
    "aiobotocore": logging.INFO,
    "boto3": logging.INFO,
    "urllib3": logging.INFO,
    "httpcore": logging.INFO,
    # Sign-in libraries: their debug lines show device codes and token responses.
    "msal": logging.INFO,
    "oauthlib": logging.INFO,
    "requests_oauthlib": logging.INFO,
    "google_auth_oauthlib": logging.INFO,
}
# One line per HTTP call or migration step: detail for -v only.
_CHATTY = ("httpx", "alembic", "aiobotocore", "botocore")


def guard_sources() -> None:
    """Fix the known sources of secrets in logs (layer 1); safe to call more than once."""
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryFreeArgs) for f in logger.filters):
            logger.addFilter(QueryFreeArgs())
    for name, floor in _HELD_AT.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, logger.getEffectiveLevel()))


def configure(level: int, *, verbose: bool = False) -> None:
    """Send fap's log to stderr at ``level`` (DEBUG when ``verbose``), never with a secret."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else level)
    for name in (*_HELD_AT, *_CHATTY):
        logging.getLogger(name).setLevel(logging.NOTSET)  # a second configure starts afresh
    guard_sources()
    if not verbose:
        for name in _CHATTY:
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
