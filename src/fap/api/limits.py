"""Limits of API v1 a caller can meet: the server refuses more (400), the client splits below them.

One place for both sides, so that a server that lowers a limit and a client that respects it
cannot drift apart.
"""

from __future__ import annotations

__all__ = ("MAX_CHUNK_URLS", "MAX_LIST_LIMIT", "MAX_WAIT_IDS")

# Upload ids one ``POST /v1/uploads/wait`` may name: each is a topic the long-poll subscribes to.
MAX_WAIT_IDS = 1000
# The largest ``limit`` of ``GET /v1/uploads`` (the smallest is 1): one answer stays a few MB.
MAX_LIST_LIMIT = 1000
# Chunks one ``POST /v1/uploads/{id}/chunk-urls`` may ask for: each URL is signed on the spot.
MAX_CHUNK_URLS = 1024
