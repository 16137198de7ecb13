"""Stored rows as wire messages."""

from __future__ import annotations

from typing import Protocol

from fap.api import DeviceInfo, UploadInfo
from fap.server.store import Device, Upload

__all__ = ("Chunked", "device_info", "expected_raw_size", "upload_info")


def upload_info(upload: Upload, chunks_stored: list[int]) -> UploadInfo:
    return UploadInfo(
        id=upload.id,
        name=upload.name,
        size=upload.size,
        sha256=upload.sha256,
        engine=upload.engine,
        chunk_size=upload.chunk_size,
        chunk_count=upload.chunk_count,
        chunks_stored=chunks_stored,
        state=upload.state,
        attempts=upload.attempts,
        error=upload.error,
        created_at=upload.created_at,
        finished_at=upload.finished_at,
    )


def device_info(device: Device) -> DeviceInfo:
    return DeviceInfo(
        id=device.id,
        name=device.name,
        recipient=device.recipient,
        created_at=device.created_at,
        revoked_at=device.revoked_at,
    )


class Chunked(Protocol):
    """A file cut into chunks: an upload, or one about to be created (``id`` empty)."""

    @property
    def id(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def chunk_size(self) -> int: ...
    @property
    def chunk_count(self) -> int: ...


def expected_raw_size(file: Chunked, seq: int) -> int:
    """The raw size of chunk ``seq``: ``chunk_size`` except for a shorter last chunk."""
    return min(file.chunk_size, file.size - seq * file.chunk_size)
