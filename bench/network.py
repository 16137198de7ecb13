"""The links the benchmark runs over: S3 in a network namespace of its own, behind a veth pair
whose host side is shaped with ``tc … tbf``, or on the host's loopback unshaped.

Why this shape: the client, the fap server and the processors stay on the host, and only what
crosses the veth — the client's PUTs to S3 — meets the limit, as it meets the uplink of a
desktop. tbf shapes what a device sends, so the host side shapes client→S3 (uploads); the way
back (S3→processors' GETs) is left unshaped, as a processor sits next to its object store.

Everything made here has a fixed name, so that a run killed half-way leaves nothing the next
run does not remove first (``Namespace.remove_leftovers``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass

__all__ = (
    "LINKS",
    "Link",
    "Namespace",
    "NamespaceUnavailable",
)

NETNS = "fapbench"
HOST_IF = "fapb-host"
NS_IF = "fapb-s3"
# A /30 of the private range nothing else on a CI machine uses; traffic to it never leaves the
# machine: the far end is the namespace made here.
HOST_ADDR = "10.213.7.1"
NS_ADDR = "10.213.7.2"
_PREFIX = 30
# tbf's queue: 50 ms of backlog before it drops, like a modem's buffer; TCP settles at the rate.
_TBF_LATENCY = "50ms"
_TIMEOUT = 20.0


@dataclass(frozen=True)
class Link:
    """One network the uploads cross: a tbf rate on the veth, or loopback (``rate_mbit=None``)."""

    name: str
    label: str
    rate_mbit: int | None

    @property
    def shaped(self) -> bool:
        return self.rate_mbit is not None

    @property
    def burst_bytes(self) -> int:
        """10 ms at the rate, and at least 64 KiB: one GSO segment always fits in a burst, so tbf
        never has to split one, and the bucket refills often enough for a steady rate."""
        assert self.rate_mbit is not None
        return max(self.rate_mbit * 1_000_000 // 8 // 100, 64 * 1024)

    @property
    def tbf(self) -> str:
        """The qdisc, as ``tc`` is told it (and as the report prints it)."""
        if self.rate_mbit is None:
            return "none (loopback)"
        return f"tbf rate {self.rate_mbit}mbit burst {self.burst_bytes} latency {_TBF_LATENCY}"


LINKS: tuple[Link, ...] = (
    Link("100mbit", "100 Mbit/s (desktop uplink)", 100),
    Link("1gbit", "1 Gbit/s (office)", 1000),
    Link("loopback", "loopback (unshaped)", None),
)


class NamespaceUnavailable(RuntimeError):
    """The namespace or the veth could not be made (not root, no ``ip``, no netns support)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=_TIMEOUT, check=check
    )


def _tc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tc", *args], capture_output=True, text=True, timeout=_TIMEOUT, check=check
    )


class Namespace:
    """``fapbench``: a namespace holding one end of a veth pair, the host the other end."""

    address = NS_ADDR

    def exec_prefix(self) -> list[str]:
        """What runs a command inside the namespace."""
        return ["ip", "netns", "exec", NETNS]

    @staticmethod
    def remove_leftovers() -> None:
        """Whatever a crashed run left: the processes it started in the namespace (its S3
        server), then the namespace, which takes its veth end, the pair and the host end's
        qdisc with it."""
        if shutil.which("ip") is None:
            return
        # Only processes inside the benchmark's own namespace: nothing else lives there.
        for pid in _ip("netns", "pids", NETNS, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("link", "del", HOST_IF, check=False)
        _ip("netns", "del", NETNS, check=False)

    def create(self) -> Namespace:
        if os.geteuid() != 0:
            raise NamespaceUnavailable("not running as root: network namespaces need root")
        if shutil.which("ip") is None or shutil.which("tc") is None:
            raise NamespaceUnavailable("`ip` or `tc` is missing (Debian: iproute2)")
        self.remove_leftovers()
        steps: list[tuple[str, ...]] = [
            ("netns", "add", NETNS),
            ("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF),
            ("link", "set", NS_IF, "netns", NETNS),
            ("addr", "add", f"{HOST_ADDR}/{_PREFIX}", "dev", HOST_IF),
            ("link", "set", HOST_IF, "up"),
            ("netns", "exec", NETNS, "ip", "addr", "add", f"{NS_ADDR}/{_PREFIX}", "dev", NS_IF),
            ("netns", "exec", NETNS, "ip", "link", "set", NS_IF, "up"),
            ("netns", "exec", NETNS, "ip", "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step, check=False)
            if done.returncode != 0:
                self.remove()
                last = (done.stderr or done.stdout).strip().splitlines()
                raise NamespaceUnavailable(
                    f"`ip {' '.join(step)}` failed: {last[-1] if last else done.returncode}"
                )
        return self

    def shape(self, link: Link) -> None:
        """Put ``link``'s tbf on the host end (``replace``: whatever was there goes)."""
        assert link.rate_mbit is not None
        _tc(
            "qdisc",
            "replace",
            "dev",
            HOST_IF,
            "root",
            "tbf",
            "rate",
            f"{link.rate_mbit}mbit",
            "burst",
            str(link.burst_bytes),
            "latency",
            _TBF_LATENCY,
        )

    def qdisc(self) -> str:
        """The qdisc in force, as ``tc`` shows it: the report quotes what was really set."""
        return _tc("qdisc", "show", "dev", HOST_IF, check=False).stdout.strip()

    def unshape(self) -> None:
        _tc("qdisc", "del", "dev", HOST_IF, "root", check=False)

    def remove(self) -> None:
        self.unshape()
        self.remove_leftovers()
