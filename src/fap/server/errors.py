"""The server's error tree: what the store, the queue, the blob stores and the routes raise.

Named for what happened, never for a status: nothing here knows HTTP. :mod:`fap.server.problems`
maps each class to its answer in one table, at the HTTP edge; a class missing there is a bug,
answered 500. ``str(error)`` is the sentence the caller reads — except for :class:`Unavailable`,
whose message names an address or a driver's words, for the log; the caller is told to retry.

    FapError (fap.errors)
    ├── Refusal                  the request cannot be done as asked; the caller must change it
    │   ├── BadRequest           a malformed body, parameter, key or checksum
    │   ├── Unauthorized         no token, or one the server does not know
    │   ├── Forbidden            a role that may not do this; a blob URL altered or expired
    │   ├── NotFound             no such object in the caller's organisation
    │   ├── Conflict             a lost race, a stale lease, a finished job
    │   │   └── Sealed           an object no PUT may replace any more (a completed result)
    │   ├── Gone                 an object deleted for good (a result past its retention)
    │   ├── TooLarge             over a size limit: the plan's, a result's, a URL's
    │   └── QuotaExceeded        over a quota of the organisation's plan (a month's bytes,
    │                            uploads in flight)
    ├── Unavailable              a service the server needs is out of reach; try again shortly
    │   ├── StoreUnavailable     the state store (the database)
    │   ├── BlobStoreUnavailable the object store, or a blob store not open (starting, stopping)
    │   └── IssuerUnavailable    an identity provider's discovery document or keys (JWKS)
    └── ClientDisconnected       the client hung up before its answer: nobody is left to tell
"""

from __future__ import annotations

import re

from fap.errors import FapError

__all__ = (
    "BadRequest",
    "BlobStoreUnavailable",
    "ClientDisconnected",
    "Conflict",
    "Forbidden",
    "Gone",
    "IssuerUnavailable",
    "NotFound",
    "QuotaExceeded",
    "Refusal",
    "Sealed",
    "StoreUnavailable",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "shown_id",
)


class Refusal(FapError):
    """A request the server will not do as asked: ``str(refusal)`` says why, in one sentence."""


class BadRequest(Refusal):
    pass


class Unauthorized(Refusal):
    pass


class Forbidden(Refusal):
    pass


class NotFound(Refusal):
    pass


class Conflict(Refusal):
    pass


class Sealed(Conflict):
    """A PUT to an object that is sealed: it keeps its bytes, whatever the URL."""


class Gone(Refusal):
    pass


class TooLarge(Refusal):
    pass


class QuotaExceeded(Refusal):
    pass


class Unavailable(FapError):
    """A service the server needs cannot be reached now; the request may be tried again shortly.

    At start-up it reaches the CLI as any FapError does; during a request the caller gets a retry
    hint, and the message (an address, a driver's words) goes to the log only.
    """


class StoreUnavailable(Unavailable):
    """The state store cannot be reached (see fap.server.store.outages for what counts)."""

    def __init__(self, message: str, *, lost_connection: bool) -> None:
        super().__init__(message)
        # True when a connection broke under a transaction: the pool has dropped it, so an
        # immediate retry gets a fresh one. False when no connection could be made at all.
        self.lost_connection = lost_connection


class BlobStoreUnavailable(Unavailable):
    """The object store failed or could not be reached, or the blob store is not open."""


class IssuerUnavailable(Unavailable):
    """An identity provider's discovery document or keys could not be fetched or understood, so
    no ID token of it can be verified now: the token may be fine, and the caller may retry."""


class ClientDisconnected(FapError):
    """The client hung up before it had its answer: nobody is left to read one."""

    def __init__(self, message: str = "The client hung up before its answer.") -> None:
        super().__init__(message)


_PRINTABLE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def shown_id(value: str) -> str:
    """An id as a message may quote it: itself if it looks like an id, else a description."""
    return value if _PRINTABLE_ID.fullmatch(value) else "with that id"
