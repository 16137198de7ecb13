"""The object store a ``--storage`` URL names: the data dir's blobs/ when it names none."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fap.server.blobs.base import BlobStore
from fap.server.blobs.local import LocalBlobStore
from fap.server.blobs.location import LocalLocation, parse_storage_url

__all__ = ("blob_store_for",)


def blob_store_for(
    storage: str,
    *,
    default_root: Path,
    secret_path: Path,
    base_url: str,
    clock: Callable[[], float] = time.time,
) -> BlobStore:
    """The store for ``storage`` ("" is ``default_root``). The local store signs its URLs with
    the secret at ``secret_path`` and serves them under ``base_url``; S3 signs its own."""
    if not storage:
        return LocalBlobStore(default_root, secret_path, base_url, clock)
    location = parse_storage_url(storage)
    if isinstance(location, LocalLocation):
        return LocalBlobStore(location.root, secret_path, base_url, clock)
    # Imported here: the AWS SDK is a third of a second of every server's start, needed only
    # by a server whose storage is S3.
    from fap.server.blobs.s3 import S3BlobStore

    return S3BlobStore(location)
