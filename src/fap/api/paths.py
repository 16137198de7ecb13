"""Paths and headers of the HTTP API, so no role spells a URL by hand."""

from __future__ import annotations

import re

__all__ = (
    "API_VERSION",
    "API_VERSION_HEADER",
    "AUDIT",
    "AUTH_PROVIDERS",
    "AUTH_REFRESH",
    "AUTH_SIGN_IN",
    "AUTH_SIGN_OUT",
    "BLOBS",
    "CHUNKS",
    "CHUNK_URLS",
    "CLIENT_LATEST_HEADER",
    "DEPRECATION_HEADER",
    "DEVICE",
    "DEVICES",
    "HEALTHZ",
    "INVITATION",
    "INVITATIONS",
    "JOB_CHUNKS",
    "JOB_COMPLETE",
    "JOB_COMPLETIONS",
    "JOB_FAIL",
    "JOB_HEARTBEAT",
    "JOB_RESULT_URL",
    "LEASE",
    "LEASES",
    "ME",
    "MEMBER",
    "MEMBERS",
    "MEMBER_ROLE",
    "ORG",
    "ORGS",
    "ORG_ACCESS",
    "ORG_ENGINE",
    "ORG_HEADER",
    "STATUS",
    "SUNSET_HEADER",
    "TOKEN",
    "TOKENS",
    "UPLOAD",
    "UPLOADS",
    "UPLOADS_BATCH",
    "UPLOADS_REPORTS",
    "UPLOADS_WAIT",
    "UPLOAD_RESULT",
)

# The dated API version this release speaks; clients send it, the server answers with its latest.
# A request without the header is answered in the server's newest version. The versions a server
# still speaks, and how it gives an answer an older version's shape, are in fap/server/versions.py.
API_VERSION = "2026-12-01"
API_VERSION_HEADER = "Fap-Api-Version"
# On answers to a request in a version on its way out: since when (RFC 9745, ``@UNIX-SECONDS``)
# and from when it is refused (RFC 8594, an HTTP date).
DEPRECATION_HEADER = "Deprecation"
SUNSET_HEADER = "Sunset"
# On every answer: the newest client release the server knows of (``X.Y.Z``).
CLIENT_LATEST_HEADER = "Fap-Client-Latest"
CLIENT_RELEASE = re.compile(r"\d+(?:\.\d+){0,3}")
# The organisation a request acts in, for a user in several (``--org`` / FAP_ORG).
ORG_HEADER = "Fap-Org"

HEALTHZ = "/healthz"
ME = "/v1/me"
DEVICES = "/v1/devices"
DEVICE = "/v1/devices/{device_id}"
STATUS = "/v1/status"

# Signing in: public routes (no token), answered with the server's own session tokens.
AUTH_PROVIDERS = "/v1/auth/providers"
AUTH_SIGN_IN = "/v1/auth/sign-in"
AUTH_REFRESH = "/v1/auth/refresh"
AUTH_SIGN_OUT = "/v1/auth/sign-out"

ORGS = "/v1/orgs"
ORG = "/v1/orgs/{org}"
ORG_ACCESS = "/v1/orgs/{org}/access"
ORG_ENGINE = "/v1/orgs/{org}/engine"
MEMBERS = "/v1/orgs/{org}/members"
MEMBER = "/v1/orgs/{org}/members/{member}"
MEMBER_ROLE = "/v1/orgs/{org}/members/{member}/role"
INVITATIONS = "/v1/orgs/{org}/invitations"
INVITATION = "/v1/orgs/{org}/invitations/{email}"
TOKENS = "/v1/orgs/{org}/tokens"
TOKEN = "/v1/orgs/{org}/tokens/{token_id}"  # noqa: S105 (a path)
AUDIT = "/v1/orgs/{org}/audit"

UPLOADS = "/v1/uploads"
UPLOADS_WAIT = "/v1/uploads/wait"
# Many small files at once: their uploads made (with their chunks' URLs) in one request, their
# stored chunks reported in another.
UPLOADS_BATCH = "/v1/uploads/batch"
UPLOADS_REPORTS = "/v1/uploads/reports"
UPLOAD = "/v1/uploads/{upload_id}"
CHUNK_URLS = "/v1/uploads/{upload_id}/chunk-urls"
CHUNKS = "/v1/uploads/{upload_id}/chunks"
UPLOAD_RESULT = "/v1/uploads/{upload_id}/result"

LEASE = "/v1/lease"
# Several small jobs in one lease request, and their completions with their results in one request.
LEASES = "/v1/leases"
JOB_COMPLETIONS = "/v1/jobs/completions"
JOB_HEARTBEAT = "/v1/jobs/{job_id}/heartbeat"
JOB_CHUNKS = "/v1/jobs/{job_id}/chunks"
JOB_RESULT_URL = "/v1/jobs/{job_id}/result-url"
JOB_COMPLETE = "/v1/jobs/{job_id}/complete"
JOB_FAIL = "/v1/jobs/{job_id}/fail"

# The local blob store's own routes (embedded default): HMAC-signed, expiring URLs.
BLOBS = "/blobs"
