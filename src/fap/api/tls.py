"""The TLS context every HTTP client of a fap process shares."""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ("tls_context",)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Verifying, with the CA bundle (or SSL_CERT_FILE / SSL_CERT_DIR) httpx would use: built
    once, since building one reads the whole bundle (~20 ms), and a command holds several
    clients (the API's, the object store's)."""
    return httpx.create_ssl_context()
