"""``fap engine``: the engine app served by uvicorn on one unix socket, and nothing else.

The socket is created here rather than by uvicorn, which would make it world-writable (0666): it
is bound under a 0177 umask, so only the engine's own user can connect, and removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from fap.engine.app import EngineApp
from fap.engine.errors import EngineSetupError
from fap.engine.protocol import PROTOCOL_VERSION
from fap.engine.sdk import Analyzer

__all__ = ("MAX_SOCKET_PATH", "bind_unix_socket", "serve_engine")

logger = logging.getLogger(__name__)

# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
MAX_SOCKET_PATH = 103


class _EngineServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a captured SIGTERM once it has shut down, which kills the process
        # before the socket file is removed. An engine told to stop stops cleanly and exits 0.
        handled = (signal.SIGINT, signal.SIGTERM)
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def serve_engine(socket_path: Path, analyzer: Analyzer, engine: str) -> None:
    """Serve ``analyzer`` as ``engine`` on ``socket_path`` until SIGTERM or SIGINT."""
    sock = bind_unix_socket(socket_path)
    bound = socket_path.stat().st_ino
    try:
        config = uvicorn.Config(
            EngineApp(analyzer, engine),
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            # On the first SIGTERM or SIGINT the analyses in flight finish, as the worker's
            # jobs do when the same signal reaches its process group; a second SIGINT cuts them
            # off, and the worker follows a SIGTERM with SIGKILL when it must.
            timeout_graceful_shutdown=None,
        )
        logger.info(
            "Engine %s (protocol %d) listening on %s.", engine, PROTOCOL_VERSION, socket_path
        )
        asyncio.run(_EngineServer(config).serve(sockets=[sock]))
    finally:
        sock.close()
        # Remove the socket file unless another engine has replaced it meanwhile.
        with contextlib.suppress(FileNotFoundError):
            if socket_path.stat().st_ino == bound:
                socket_path.unlink()
    logger.info("Engine %s stopped.", engine)


def bind_unix_socket(path: Path) -> socket.socket:
    """A stream socket bound to ``path``, readable and writable by this user alone."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise EngineSetupError(
            f"The socket path {path} is {len(os.fsencode(path))} bytes long; unix sockets allow "
            f"at most {MAX_SOCKET_PATH}. Choose a shorter path."
        )
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask is process-wide, but nothing else runs yet: the engine has not started a thread.
    previous = os.umask(0o177)
    try:
        sock.bind(os.fspath(path))
    except OSError as error:
        sock.close()
        raise EngineSetupError(f"Cannot listen on {path}: {error.strerror or error}.") from error
    finally:
        os.umask(previous)
    return sock


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file an engine that died left behind; refuse anything else in the way."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise EngineSetupError(f"{path} exists and is not a socket; choose another path.")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            path.unlink()  # nobody listens: a leftover
            return
    raise EngineSetupError(f"Another process is already listening on {path}.")
