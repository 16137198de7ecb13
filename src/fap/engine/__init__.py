"""The engine role: the protocol, the analyzer SDK, the reference analyzer and its server.

An engine sees one file stream per request and listens on a unix socket only, never on the
network (keeping its analyzer off the network is the worker's sandbox's job, not the engine's); it
imports no other fap role, so it can be replaced by one written in any language
(``docs/engine-protocol.md``).
"""

from fap.engine.errors import EngineSetupError
from fap.engine.protocol import DEFAULT_ENGINE, PROTOCOL_VERSION, SOCKET_ENV
from fap.engine.sdk import Analyzer, FileMeta, check_engine_name, load_analyzer

__all__ = (
    "DEFAULT_ENGINE",
    "PROTOCOL_VERSION",
    "SOCKET_ENV",
    "Analyzer",
    "EngineSetupError",
    "FileMeta",
    "check_engine_name",
    "load_analyzer",
)
