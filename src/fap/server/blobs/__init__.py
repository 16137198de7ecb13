"""Object storage behind presigned URLs: the BlobStore protocol and its implementations."""

from fap.server.blobs.base import BlobStore, chunk_key, result_key, upload_prefix
from fap.server.blobs.local import LocalBlobStore
from fap.server.blobs.routes import blob_router

__all__ = (
    "BlobStore",
    "LocalBlobStore",
    "blob_router",
    "chunk_key",
    "result_key",
    "upload_prefix",
)
