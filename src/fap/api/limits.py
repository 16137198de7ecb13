"""Limits of API v1 a caller can meet: the server refuses more (400), the client splits below them.

One place for both sides, so that a server that lowers a limit and a client that respects it
cannot drift apart.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_CHUNK_SIZE",
    "MAX_BATCH",
    "MAX_CHUNK_SIZE",
    "MAX_CHUNK_URLS",
    "MAX_COMPLETIONS",
    "MAX_INLINE_ANSWER",
    "MAX_INLINE_RESULT",
    "MAX_INLINE_RESULTS",
    "MAX_LEASES",
    "MAX_LIST_LIMIT",
    "MAX_PACK_SIZE",
    "MAX_WAIT_IDS",
    "MIN_CHUNK_SIZE",
)

_KiB = 1024
_MiB = 1024 * _KiB

# Upload ids one ``POST /v1/uploads/wait`` may name: each is a topic the long-poll subscribes to.
MAX_WAIT_IDS = 1000
# The largest ``limit`` of ``GET /v1/uploads`` (the smallest is 1): one answer stays a few MB.
MAX_LIST_LIMIT = 1000
# Uploads one ``POST /v1/uploads/batch`` makes, and chunk reports one ``POST /v1/uploads/reports``
# records: each is a row (or three) of one transaction and, for a report, a blob to look at.
MAX_BATCH = 256
# The stored bytes of one pack (``UploadBatch.pack``): a batch of small files PUT as one object,
# which a processor reads a chunk at a time with a Range request.
MAX_PACK_SIZE = 64 * _MiB
# Chunks one ``POST /v1/uploads/{id}/chunk-urls`` may ask for: each URL is signed on the spot.
MAX_CHUNK_URLS = 1024
# An upload's chunk size, in raw bytes, is the uploader's choice within these bounds: below 64 KiB
# the requests per byte dominate; above 256 MiB one chunk no longer fits a worker's memory at ease.
MIN_CHUNK_SIZE = 64 * _KiB
MAX_CHUNK_SIZE = 256 * _MiB
# What an uploader that does not say chooses: large enough that a chunk's two requests (its URL,
# its report) are a small part of its time, small enough that a lost PUT costs little to repeat.
DEFAULT_CHUNK_SIZE = 8 * _MiB
# A sealed result up to this size goes with its job's completion (``POST /v1/jobs/completions``)
# rather than to a presigned PUT of its own: for a small file's job that is two requests fewer.
MAX_INLINE_RESULT = 64 * _KiB
# Completions one ``POST /v1/jobs/completions`` records, in one transaction, and the sealed bytes
# they carry in all: base64 makes 512 KiB ~683 KiB, under the server's 1 MiB bound of a JSON body.
MAX_COMPLETIONS = 64
MAX_INLINE_RESULTS = 512 * _KiB
# Sealed results one answer to ``POST /v1/uploads/wait`` carries in all (``inline_results``): a
# folder's worth of small results (a few hundred bytes each) in one answer, and its size bounded.
MAX_INLINE_ANSWER = 4 * _MiB
# Jobs one ``POST /v1/leases`` may hand out: each is a row of one transaction and a lease whose
# heartbeats its worker owes from then on.
MAX_LEASES = 16
