"""Read-only questions to the server: its status, the caller's uploads."""

from __future__ import annotations

from fap.api import (
    MAX_LIST_LIMIT,
    STATUS,
    UPLOADS,
    ApiSession,
    StatusReport,
    UploadInfo,
    UploadList,
)
from fap.errors import InputError

__all__ = ("fetch_status", "list_uploads")


async def fetch_status(session: ApiSession) -> StatusReport:
    return await session.call("GET", STATUS, returns=StatusReport)


async def list_uploads(session: ApiSession, *, limit: int = 100) -> list[UploadInfo]:
    """The caller's ``limit`` newest uploads, newest first (1 to ``MAX_LIST_LIMIT``).

    The list has no pages to ask for one after another, so a larger limit is refused here, in
    words, rather than by the server.
    """
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InputError(f"The limit must be between 1 and {MAX_LIST_LIMIT}; {limit} is not.")
    answer = await session.call("GET", UPLOADS, params={"limit": limit}, returns=UploadList)
    return answer.uploads
