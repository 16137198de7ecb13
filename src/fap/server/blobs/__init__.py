"""Object storage behind presigned URLs: the BlobStore protocol and its implementations."""

from fap.server.blobs.base import (
    BlobStore,
    SignedPut,
    StoredBlob,
    chunk_key,
    result_key,
    upload_prefix,
)
from fap.server.blobs.factory import blob_store_for
from fap.server.blobs.local import LocalBlobStore
from fap.server.blobs.location import LocalLocation, S3Location, parse_storage_url
from fap.server.blobs.routes import blob_router
from fap.server.blobs.s3 import S3BlobStore

__all__ = (
    "BlobStore",
    "LocalBlobStore",
    "LocalLocation",
    "S3BlobStore",
    "S3Location",
    "SignedPut",
    "StoredBlob",
    "blob_router",
    "blob_store_for",
    "chunk_key",
    "parse_storage_url",
    "result_key",
    "upload_prefix",
)
