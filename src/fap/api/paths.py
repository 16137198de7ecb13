"""Paths and headers of the HTTP API, so no role spells a URL by hand."""

from __future__ import annotations

__all__ = (
    "API_VERSION",
    "API_VERSION_HEADER",
    "BLOBS",
    "CHUNKS",
    "CHUNK_URLS",
    "DEVICES",
    "HEALTHZ",
    "JOB_CHUNKS",
    "JOB_COMPLETE",
    "JOB_FAIL",
    "JOB_HEARTBEAT",
    "JOB_RESULT_URL",
    "LEASE",
    "ME",
    "STATUS",
    "UPLOAD",
    "UPLOADS",
    "UPLOADS_WAIT",
    "UPLOAD_RESULT",
)

# The dated API version this release speaks; clients send it, the server answers with its latest.
API_VERSION = "2026-11-30"
API_VERSION_HEADER = "Fap-Api-Version"

HEALTHZ = "/healthz"
ME = "/v1/me"
DEVICES = "/v1/devices"
STATUS = "/v1/status"

UPLOADS = "/v1/uploads"
UPLOADS_WAIT = "/v1/uploads/wait"
UPLOAD = "/v1/uploads/{upload_id}"
CHUNK_URLS = "/v1/uploads/{upload_id}/chunk-urls"
CHUNKS = "/v1/uploads/{upload_id}/chunks"
UPLOAD_RESULT = "/v1/uploads/{upload_id}/result"

LEASE = "/v1/lease"
JOB_HEARTBEAT = "/v1/jobs/{job_id}/heartbeat"
JOB_CHUNKS = "/v1/jobs/{job_id}/chunks"
JOB_RESULT_URL = "/v1/jobs/{job_id}/result-url"
JOB_COMPLETE = "/v1/jobs/{job_id}/complete"
JOB_FAIL = "/v1/jobs/{job_id}/fail"

# The local blob store's own routes (embedded default): HMAC-signed, expiring URLs.
BLOBS = "/blobs"
