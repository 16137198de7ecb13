"""Object storage behind presigned URLs: the BlobStore protocol and its implementations.

The S3 store is ``fap.server.blobs.s3.S3BlobStore``, imported only where it is used: the AWS
SDK it needs is a third of a second of start-up.
"""

from fap.server.blobs.base import (
    BlobStore,
    SignedPut,
    StoredBlob,
    chunk_key,
    pack_key,
    result_key,
    upload_prefix,
)
from fap.server.blobs.factory import blob_store_for
from fap.server.blobs.local import LocalBlobStore
from fap.server.blobs.location import LocalLocation, S3Location, parse_storage_url
from fap.server.blobs.routes import blob_router

__all__ = (
    "BlobStore",
    "LocalBlobStore",
    "LocalLocation",
    "S3Location",
    "SignedPut",
    "StoredBlob",
    "blob_router",
    "blob_store_for",
    "chunk_key",
    "pack_key",
    "parse_storage_url",
    "result_key",
    "upload_prefix",
)
