"""One file to the store, every tool side by side, on one link: the heart of the comparison.

For each run and each kind of data, every tool sends the same file (a fresh variant per run,
bench/data.py says why) to the same bucket: the peers, then ``fap upload --no-wait`` (file on
disk -> durable in the store) and ``fap upload`` (-> the decrypted result back).

``fap upload --no-wait`` goes to a server with no processor, as the small files' upload-only
runs do: a processor streams a file's chunks while they are still uploading, and on this small
machine it would take the CPU from the very upload being timed (the peers have no such work
beside them). The round trips go to a server of their own with one processor, and before each
command that processor is let finish what the previous one queued, so that no tool pays for
another's processing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.budget import Budget
from bench.data import Corpus
from bench.fap_client import fap_upload
from bench.fap_stack import FapStack
from bench.measure import run_measured
from bench.network import Link
from bench.peers import PEERS, Peer
from bench.results import Sample, Series
from bench.storage import Bucket

__all__ = (
    "FAP_ROUND_TRIP",
    "FAP_UPLOAD",
    "KINDS",
    "LinkSetup",
    "measure_link",
    "measure_peer",
)

KINDS = ("text", "random")
FAP_UPLOAD = "fap upload --no-wait"
FAP_ROUND_TRIP = "fap upload (round trip)"
_SETTLE_TIMEOUT = 120.0


@dataclass
class LinkSetup:
    """Everything one link's runs share."""

    link: Link
    index: int
    bucket: Bucket
    # No processor: ``fap upload --no-wait`` is timed against it.
    upload_stack: FapStack
    # One processor: the round trips.
    stack: FapStack
    peer_env: dict[str, str]
    scratch: Path

    def upload_env(self) -> dict[str, str]:
        return self.upload_stack.client_env(self.scratch / "home-upload")

    def client_env(self) -> dict[str, str]:
        return self.stack.client_env(self.scratch / "home")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _timeout_for(size: int, link: Link) -> float:
    """Ten times what the link needs for the bytes, and at least a minute: generous enough that
    only a stuck tool meets it."""
    rate = (link.rate_mbit or 1000) * 1_000_000 / 8
    return max(60.0, 10 * size / rate)


def measure_peer(
    peer: Peer, path: Path, *, bucket: Bucket, key: str, env: dict[str, str], timeout: float
) -> Sample:
    """One run of a peer tool; good only if the object is in the bucket afterwards (and, for a
    tool that does not compress, at its full size)."""
    run = run_measured(peer.single(path, bucket, key), env=env, timeout=timeout)
    sample = Sample.of(run)
    if run.ok:
        stored = bucket.object_size(peer.stored_as(key))
        sample.stored_bytes = stored
        size = path.stat().st_size
        if stored is None or (not peer.compresses and stored != size) or stored == 0:
            sample.ok = False
            sample.error = f"the bucket holds {stored} bytes of {size} after the upload"
    return sample


def measure_link(setup: LinkSetup, corpus: Corpus, *, runs: int, budget: Budget) -> list[Series]:
    rows: dict[tuple[str, str], Series] = {}

    def row(kind: str, tool: str, mode: str, size: int) -> Series:
        key = (kind, tool)
        if key not in rows:
            rows[key] = Series("transfer", tool, setup.link.name, kind, mode, size)
        return rows[key]

    for run in range(runs):
        for kind in KINDS:
            number = 100 * (setup.index + 1) + run
            path = corpus.write(kind, number)
            size = path.stat().st_size
            timeout = budget.timeout(_timeout_for(size, setup.link))
            for peer in PEERS:
                setup.stack.wait_settled(_SETTLE_TIMEOUT)
                key = f"peers/{setup.link.name}/{run}/{_slug(peer.name)}/{path.name}"
                sample = measure_peer(
                    peer, path, bucket=setup.bucket, key=key, env=setup.peer_env, timeout=timeout
                )
                row(kind, peer.name, "upload", size).samples.append(sample)
            setup.stack.wait_settled(_SETTLE_TIMEOUT)
            _, sample = fap_upload(
                [path],
                env=setup.upload_env(),
                budget=budget,
                wait=False,
                results=setup.scratch / "results",
                timeout=timeout,
            )
            row(kind, FAP_UPLOAD, "upload", size).samples.append(sample)
            path.unlink()
            # The round trip gets bytes of its own: those above are already analysed, and fap
            # would rightly answer them from the existing result.
            trip = corpus.write(kind, number + 50)
            setup.stack.wait_settled(_SETTLE_TIMEOUT)
            _, sample = fap_upload(
                [trip],
                env=setup.client_env(),
                budget=budget,
                wait=True,
                results=setup.scratch / "results",
                timeout=timeout + 60,
            )
            row(kind, FAP_ROUND_TRIP, "round-trip", size).samples.append(sample)
            trip.unlink()
    return list(rows.values())
