"""Where blobs live, from the ``--storage`` URL: ``file:///PATH`` or ``s3://BUCKET[/PREFIX]?…``.

A storage URL never carries credentials: the S3 store takes them from the standard AWS chain
(environment, profiles, instance roles), so they stay out of settings files and process lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from fap.errors import ConfigError

__all__ = ("LocalLocation", "S3Location", "parse_storage_url")

_FORMS = "file:///PATH or s3://BUCKET[/PREFIX]?endpoint=URL&region=R"
# S3's rules for bucket names that work with every addressing style: DNS-like, 3 to 63 characters.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_S3_OPTIONS = ("endpoint", "region")


@dataclass(frozen=True, slots=True)
class LocalLocation:
    root: Path


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "a/b": every key is stored under it
    endpoint: str | None  # None: AWS itself
    region: str | None  # None: the AWS chain's region (AWS_REGION, the profile)

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def __str__(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"


def parse_storage_url(url: str) -> LocalLocation | S3Location:
    """The location ``url`` names; a ConfigError sentence for anything else."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "The storage URL must not carry credentials; fap takes them from the standard AWS "
            "chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or an instance role)."
        )
    if parts.scheme == "file":
        return _local(url, parts.netloc, parts.path, parts.query)
    if parts.scheme == "s3":
        return _s3(url, parts.netloc, parts.path, parts.query)
    raise ConfigError(f"The storage URL {url!r} is not supported; write {_FORMS}.")


def _local(url: str, host: str, path: str, query: str) -> LocalLocation:
    if host not in ("", "localhost") or not path.startswith("/") or query:
        raise ConfigError(
            f"The storage URL {url!r} does not name a local directory; write file:///PATH with "
            "an absolute path."
        )
    return LocalLocation(Path(unquote(path)))


def _s3(url: str, bucket: str, path: str, query: str) -> S3Location:
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IP_ADDRESS.fullmatch(bucket):
        raise ConfigError(
            f"{bucket!r} is not an S3 bucket name: use 3 to 63 lower-case letters, digits, "
            "dots and hyphens, starting and ending with a letter or digit."
        )
    prefix = unquote(path).strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ConfigError(f"The prefix {prefix!r} of the storage URL has an empty, . or .. part.")
    try:
        options = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"The options of the storage URL {url!r} are malformed.") from None
    if unknown := sorted(set(options) - set(_S3_OPTIONS)):
        raise ConfigError(
            f"The storage URL sets {unknown[0]!r}; an s3:// URL takes only endpoint and region."
        )
    if repeated := [name for name, values in options.items() if len(values) > 1]:
        raise ConfigError(f"The storage URL sets {repeated[0]} more than once.")
    endpoint = options.get("endpoint", [None])[0]
    region = options.get("region", [None])[0]
    if endpoint is not None:
        target = urlsplit(endpoint)
        if target.scheme not in ("http", "https") or not target.netloc:
            raise ConfigError(
                f"The S3 endpoint {endpoint!r} is not a URL; write endpoint=https://HOST[:PORT]."
            )
        endpoint = endpoint.rstrip("/")
    if region is not None and not _REGION.fullmatch(region):
        raise ConfigError(f"{region!r} is not an AWS region name, such as eu-west-1.")
    return S3Location(bucket=bucket, prefix=prefix, endpoint=endpoint, region=region)
