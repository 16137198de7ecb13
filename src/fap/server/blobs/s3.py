"""Any S3 API as the object store (AWS S3, SeaweedFS, MinIO, LocalStack), through aiobotocore.

The server alone holds credentials, taken from the standard AWS chain; clients and workers get
SigV4 presigned URLs. A presigned PUT signs its exact Content-Length (S3 cannot bind a maximum,
hence the chunk URLs are asked for once a chunk is encoded) and, when the caller knows it, the
``x-amz-checksum-sha256`` header: the store then recomputes the digest and refuses a corrupted
body with 400 BadDigest, storing nothing.
"""

from __future__ import annotations

import base64
import logging
import math
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from fap.errors import ConfigError
from fap.server.blobs.base import SignedPut, StoredBlob, check_key, check_prefix, check_sha256
from fap.server.blobs.location import S3Location
from fap.server.errors import BlobStoreUnavailable

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import HeadObjectOutputTypeDef, ObjectIdentifierTypeDef

__all__ = ("S3BlobStore",)

logger = logging.getLogger(__name__)

# SigV4 presigned URLs live at most seven days.
_MAX_EXPIRY = 7 * 24 * 3600
# DeleteObjects takes at most 1000 keys per request.
_DELETE_BATCH = 1000


class S3BlobStore:
    def __init__(self, location: S3Location, session: AioSession | None = None) -> None:
        self.location = location
        self._session = session or get_session()
        self._stack = AsyncExitStack()
        self._client: S3Client | None = None

    async def open(self) -> None:
        """Connect, and check the bucket is there and ours before the server takes requests.
        Opening an open store does nothing (the runner checks before its ASGI start-up)."""
        if self._client is not None:
            return
        where = self.location
        config = AioConfig(
            signature_version="s3v4",
            # Path-style for endpoints of our own (SeaweedFS, MinIO, LocalStack): no DNS per bucket.
            s3={"addressing_style": "path" if where.endpoint else "auto"},
            # Checksums only where we ask for them: a presigned URL must carry no header the
            # uploader was not told to send.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
            # Every chunk report HEADs its object; botocore's default of 10 connections would
            # queue a busy replica's reports behind each other.
            max_pool_connections=64,
        )
        client = await self._stack.enter_async_context(
            self._session.create_client(
                "s3", region_name=where.region, endpoint_url=where.endpoint, config=config
            )
        )
        try:
            await client.head_bucket(Bucket=where.bucket)
        except NoCredentialsError:
            await self._stack.aclose()
            raise ConfigError(
                f"No AWS credentials were found for the object store {where}; set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or an instance role."
            ) from None
        except ClientError as error:
            await self._stack.aclose()
            raise ConfigError(_bucket_refusal(where, error)) from error
        except BotoCoreError as error:
            await self._stack.aclose()
            raise ConfigError(f"The object store {where} cannot be reached: {error}.") from error
        self._client = client
        logger.info("blobs in %s", where)

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise BlobStoreUnavailable(
                f"The object store {self.location} is not open: the server is starting or stopping."
            )
        return self._client

    async def presign_put(
        self, key: str, size: int, ttl: float, *, sha256: str | None = None
    ) -> SignedPut:
        if sha256 is not None:
            check_sha256(sha256)  # before bytes.fromhex, which would take upper case too
        headers = {"Content-Length": str(size)}
        params: dict[str, str | int] = {
            "Bucket": self.location.bucket,
            "Key": self._key(key),
            "ContentLength": size,
        }
        if sha256 is not None:
            checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
            params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"] = checksum
        url = await self.client.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=_expiry(ttl)
        )
        return SignedPut(url=url, headers=headers)

    async def put(self, key: str, data: bytes, sha256: str) -> None:
        # With its checksum, as a presigned PUT bound to one would: the store checks the bytes,
        # and describe() can tell the digest later.
        checksum = base64.b64encode(bytes.fromhex(check_sha256(sha256))).decode("ascii")
        try:
            await self.client.put_object(
                Bucket=self.location.bucket,
                Key=self._key(key),
                Body=data,
                ContentLength=len(data),
                ChecksumSHA256=checksum,
            )
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(self.location, error) from error

    async def presign_get(self, key: str, ttl: float) -> str:
        return await self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.location.bucket, "Key": self._key(key)},
            ExpiresIn=_expiry(ttl),
        )

    async def size(self, key: str) -> int | None:
        head = await self._head(key)
        return None if head is None else head["ContentLength"]

    async def describe(self, key: str) -> StoredBlob | None:
        head = await self._head(key, checksums=True)
        if head is None:
            return None
        checksum = head.get("ChecksumSHA256")
        # A multipart object's checksum is of its parts ("…-3"), not of its bytes: no digest.
        sha256 = None if checksum is None or "-" in checksum else base64.b64decode(checksum).hex()
        return StoredBlob(size=head["ContentLength"], sha256=sha256)

    async def _head(self, key: str, *, checksums: bool = False) -> HeadObjectOutputTypeDef | None:
        """The object's metadata (with its checksums, if asked); None if nothing is stored."""
        try:
            if checksums:
                return await self.client.head_object(
                    Bucket=self.location.bucket, Key=self._key(key), ChecksumMode="ENABLED"
                )
            return await self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
        except ClientError as error:
            if _status(error) == 404:
                return None
            raise _unavailable(self.location, error) from error
        except BotoCoreError as error:
            raise _unavailable(self.location, error) from error

    async def seal(self, key: str) -> None:
        # S3 cannot refuse a PUT per object without Object Lock (a bucket-wide setting); a result's
        # URLs are bound to its SHA-256 and expire with the lease they were signed under.
        check_key(key)

    async def delete_prefix(self, prefix: str) -> None:
        bucket = self.location.bucket
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            batch: list[ObjectIdentifierTypeDef] = []
            prefixed = self.location.key(check_prefix(prefix))
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefixed):
                for item in page.get("Contents", []):
                    batch.append({"Key": item["Key"]})
                    if len(batch) == _DELETE_BATCH:
                        await self._delete(batch)
                        batch = []
            if batch:
                await self._delete(batch)
        except (BotoCoreError, ClientError) as error:
            raise _unavailable(self.location, error) from error

    async def _delete(self, batch: list[ObjectIdentifierTypeDef]) -> None:
        answer = await self.client.delete_objects(
            Bucket=self.location.bucket, Delete={"Objects": batch, "Quiet": True}
        )
        if errors := answer.get("Errors", []):
            first = errors[0]
            raise BlobStoreUnavailable(
                f"The object store {self.location} kept {len(errors)} objects it was asked to "
                f"delete, {first.get('Key')!r} among them: {first.get('Message', 'no reason')}."
            )

    def _key(self, key: str) -> str:
        return self.location.key(check_key(key))


def _expiry(ttl: float) -> int:
    return max(1, min(_MAX_EXPIRY, math.ceil(ttl)))


def _status(error: ClientError) -> int:
    status: int = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status


def _bucket_refusal(where: S3Location, error: ClientError) -> str:
    status = _status(error)
    if status == 404:
        return f"The bucket of the object store {where} does not exist; create it first."
    if status in (401, 403):
        return (
            f"The object store {where} refused the server's credentials (status {status}); check "
            "the AWS credentials the server runs with and its permissions on the bucket."
        )
    return f"The object store {where} answered status {status} to a check of its bucket: {error}."


def _unavailable(where: S3Location, error: Exception) -> BlobStoreUnavailable:
    # Retried by clients and workers: an object store that stumbles is not their fault.
    return BlobStoreUnavailable(f"The object store {where} failed: {error}.")
