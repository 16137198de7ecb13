"""Analyzers that attack the processor, for the sandbox's end-to-end tests.

``by_name`` is one ``fap engine --analyzer tests.e2e.hostile:by_name``: the file's name says which
attack it makes, so that one worker meets them all. What each is told comes from the engine's
environment (``--engine-env``): where the test listens, which of the processor's files to look for.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, BinaryIO

from fap.engine.reference import analyze as reference

MiB = 1024 * 1024


def phone_home(stream: BinaryIO, meta: Any) -> Any:
    """Connect to the test's listener on the processor's loopback and hand it the file."""
    port = int(os.environ["FAP_TEST_PORT"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(stream.read())
    return {"phoned": True}


def peek(stream: BinaryIO, meta: Any) -> Any:
    """Look for the processor's secrets: its token files, its home, its environment."""
    stream.read()
    found: dict[str, str] = {}
    for name in os.environ.get("FAP_TEST_PEEK", "").split(os.pathsep):
        path = Path(name)
        try:
            found[name] = (
                " ".join(sorted(p.name for p in path.iterdir()))
                if path.is_dir()
                else path.read_text()
            )
        except OSError as error:
            found[name] = f"unreadable: {type(error).__name__}"
    return {
        "found": found,
        "environment": dict(os.environ),
        "uid": os.getuid(),
        "uid_map": Path("/proc/self/uid_map").read_text().split(),
        "home": os.environ.get("HOME"),
    }


def hog(stream: BinaryIO, meta: Any) -> Any:
    """Allocate, and touch, 16 MiB after 16 MiB until the memory runs out."""
    stream.read()
    held = []
    while True:
        held.append(b"\x01" * (16 * MiB))


def spin(stream: BinaryIO, meta: Any) -> Any:
    """Loop forever on the CPU."""
    stream.read()
    count = 0
    while True:
        count += 1


def fork_bomb(stream: BinaryIO, meta: Any) -> Any:
    """Fork until the kernel refuses, each child waiting forever; then fail as a program would."""
    stream.read()
    while True:
        pid = os.fork()  # raises BlockingIOError once the process limit is reached
        if pid == 0:
            try:
                while True:
                    time.sleep(60)
            finally:
                os._exit(0)


def big_answer(stream: BinaryIO, meta: Any) -> Any:
    """Answer 2 MiB of JSON (sent with its Content-Length)."""
    stream.read()
    return {"padding": "x" * (2 * MiB)}


ATTACKS = {
    "net": phone_home,
    "peek": peek,
    "hog": hog,
    "spin": spin,
    "fork": fork_bomb,
    "big": big_answer,
}


def by_name(stream: BinaryIO, meta: Any) -> Any:
    """The attack the file's name starts with (``hog-1.bin``), or the reference analysis."""
    attack = ATTACKS.get(meta.name.split("-", 1)[0])
    return attack(stream, meta) if attack else reference(stream, meta)
