"""Running the server: the app on uvicorn, on a socket bound up front, with a graceful stop.

The first SIGTERM or Ctrl-C stops accepting connections, ends every long-poll at once (their
callers get their usual "nothing yet" answer and ask again elsewhere or later), lets requests in
flight finish for up to ``_GRACE_SECONDS``, then stops the services. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from fap.config import ServerSettings
from fap.errors import ConfigError, FapError
from fap.logs import guard_sources
from fap.server.app import create_app, services_of

__all__ = ("serve",)

logger = logging.getLogger(__name__)

# Long-polls end at once on shutdown; this bounds what is left (a large blob PUT in flight).
_GRACE_SECONDS = 10
# Longer than a client's keep-alive pool holds idle connections, so the server is not the one
# closing a connection while the client sends on it.
_KEEP_ALIVE_SECONDS = 75


async def serve(settings: ServerSettings) -> bool:
    """Serve until a signal says stop; answer whether the stop was a hard one (a second signal).

    Raises FapError if the server cannot start.
    """
    sock = _bind(settings.host, settings.port)
    app = create_app(settings)
    services = services_of(app)
    # Before uvicorn, whose failed start-up is a traceback: a data directory that cannot be used,
    # a missing secret, an object store or a database out of reach are each one sentence here.
    # The app's start-up then finds the services open.
    try:
        await services.open()
    except BaseException:
        sock.close()
        raise
    loop = asyncio.get_running_loop()
    notifier = services.notifier
    # uvicorn's access line names each blob URL with its query, which is its signature.
    guard_sources()
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=_GRACE_SECONDS,
    )
    server = _Server(config, on_exit=lambda: loop.call_soon_threadsafe(notifier.stop))
    logger.info("fap serve listening on %s (blob URLs: %s)", _address(sock), settings.base_url)
    if not settings.public_url and settings.host in ("0.0.0.0", "::"):  # noqa: S104
        logger.warning(
            "Presigned blob URLs name %s, which no client can reach; set --public-url to the "
            "address clients and workers use.",
            settings.base_url,
        )
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise FapError("The server did not start; the log above says why.")
    return server.force_exit


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], object]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, less its re-raising of the signal after the stop: a graceful stop exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler on the loop's thread; the callback only schedules work.
        super().handle_exit(sig, frame)
        self._on_exit()


def _bind(host: str, port: int) -> socket.socket:
    """Bind before starting, so a port in use is one clear sentence, not a traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"The host {host!r} cannot be resolved: {error.strerror}.") from error
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"Cannot listen on {host}:{port}: {error.strerror or error}; is another server "
            "running there? Choose another --port."
        ) from error
    return sock


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
