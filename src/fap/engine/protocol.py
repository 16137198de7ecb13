"""The engine protocol, version 1: the constants both sides of the unix socket spell the same way.

This module is the whole contract in code; ``docs/engine-protocol.md`` is the same contract in
prose, for engines written in any language. It imports nothing of fap, so the worker and the wire
contract (fap.api) can use it without pulling in the engine's server.
"""

from __future__ import annotations

import re

__all__ = (
    "ANALYZE",
    "DEFAULT_ENGINE",
    "ENGINE_NAME",
    "ENGINE_NAME_RULE",
    "FILE_NAME_HEADER",
    "FILE_SHA256_HEADER",
    "FILE_SIZE_HEADER",
    "INFO",
    "PROTOCOL_VERSION",
    "SOCKET_ENV",
    "UPLOAD_ID_HEADER",
    "is_engine_name",
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

# What an engine may call itself, NAME@VERSION: the one rule of every role (an engine reports it,
# a worker advertises it, an uploader asks for it, the server stores and matches it). Each part
# starts with a letter or digit, so it can be neither empty nor read as an option or a path; a
# version may hold "+" (build metadata, as in 1.0+cuda). At most 100 characters each: a name is
# a label of /metrics and a column of the store, never a text of any length.
ENGINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}@[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
# The same rule in words, for the sentence with which each role refuses a name.
ENGINE_NAME_RULE = (
    "each side of the @ starts with a letter or digit and holds at most 100 letters, digits, "
    "'.', '_' or '-' ('+' too in the version)"
)


def is_engine_name(text: str) -> bool:
    """Whether ``text`` is a whole engine name, NAME@VERSION (for example size@1)."""
    return ENGINE_NAME.fullmatch(text) is not None
