"""Read-only questions to the server: its status, the caller's uploads."""

from __future__ import annotations

from fap.api import STATUS, UPLOADS, ApiSession, StatusReport, UploadInfo, UploadList

__all__ = ("fetch_status", "list_uploads")


async def fetch_status(session: ApiSession) -> StatusReport:
    return await session.call("GET", STATUS, returns=StatusReport)


async def list_uploads(session: ApiSession, *, limit: int = 100) -> list[UploadInfo]:
    """The caller's uploads, newest first."""
    answer = await session.call("GET", UPLOADS, params={"limit": limit}, returns=UploadList)
    return answer.uploads
