"""The engine protocol, version 1: the constants both sides of the unix socket spell the same way.

This module is the whole contract in code; ``docs/engine-protocol.md`` is the same contract in
prose, for engines written in any language. It imports nothing, so the worker can use it without
pulling in the engine's server.
"""

from __future__ import annotations

__all__ = (
    "ANALYZE",
    "DEFAULT_ENGINE",
    "FILE_NAME_HEADER",
    "FILE_SHA256_HEADER",
    "FILE_SIZE_HEADER",
    "INFO",
    "PROTOCOL_VERSION",
    "SOCKET_ENV",
    "UPLOAD_ID_HEADER",
)

PROTOCOL_VERSION = 1

# The worker starts an engine with the path of the unix socket it must listen on in this variable.
SOCKET_ENV = "FAP_ENGINE_SOCKET"

INFO = "/v1/info"
ANALYZE = "/v1/analyze"

UPLOAD_ID_HEADER = "Fap-Upload-Id"
FILE_NAME_HEADER = "Fap-File-Name"  # percent-encoded UTF-8
FILE_SIZE_HEADER = "Fap-File-Size"  # decimal bytes; the body holds exactly this many
FILE_SHA256_HEADER = "Fap-File-Sha256"  # lowercase hex of the original bytes

# The reference analyzer's name@version, and what ``fap engine`` reports unless told otherwise.
DEFAULT_ENGINE = "size@1"
