"""The chaos driver: files dropped into the watched tree while processes are killed at random.

Every choice (the files, the order of events, the pauses, which replica dies) comes from one
``random.Random(seed)``, drawn the same number of times whatever the processes do, so a replay
with the seed runs the same script. The processes' own timing is outside any seed; it decides
only which busy processor a kill hits. The pauses are the chaos itself (the moments a process
dies), never a wait for something to happen: the test waits for outcomes with deadlines.

One round has five phases: chaos, a PostgreSQL outage, chaos, an S3 outage, chaos. Files keep
arriving in every phase, outages included; the kills happen outside the outages, since a replica
cannot start while its database or its object store is down.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tests.chaos.cluster import Cluster
from tests.chaos.corpus import ChaosFile, make_corpus

__all__ = ("KINDS", "Driver", "Figures", "Scale")

KINDS = ("processor", "replica", "watcher")
_PHASES = 5  # chaos, postgres outage, chaos, s3 outage, chaos
# How long a kill waits for its target to be busy before it strikes anyway.
AIM_SECONDS = 3.0
T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    """How much chaos one round holds."""

    rounds: int
    files: int  # per round
    kills: dict[str, int]  # per round, by kind
    outage_seconds: float


@dataclass
class Figures:
    files: int = 0
    bytes: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    mid_work: Counter[str] = field(default_factory=Counter)  # kills that hit work in flight
    outages: Counter[str] = field(default_factory=Counter)  # seconds each service was down
    round_seconds: list[float] = field(default_factory=list)

    def summary(self) -> str:
        # A replica always has work in flight: the long-polls of the clients and processors.
        kills = ", ".join(
            f"{kind} {self.kills[kind]}"
            + ("" if kind == "replica" else f" ({self.mid_work[kind]} mid-work)")
            for kind in KINDS
        )
        outages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.outages.items())
        rounds = ", ".join(f"{seconds:.1f}" for seconds in self.round_seconds)
        return (
            f"{self.files} files ({self.bytes / 1024 / 1024:.1f} MiB) in "
            f"{len(self.round_seconds)} rounds ({rounds} s); kills: {kills}; outages: {outages}"
        )


class Driver:
    def __init__(self, cluster: Cluster, rng: random.Random, figures: Figures) -> None:
        self.cluster = cluster
        self.rng = rng
        self.figures = figures

    def round(self, number: int, scale: Scale) -> list[ChaosFile]:
        """Run one round; answer the files it dropped."""
        files = make_corpus(self.rng, scale.files, f"round-{number}")
        batches = [files[phase::_PHASES] for phase in range(_PHASES)]
        kills = [kind for kind in KINDS for _ in range(scale.kills[kind])]
        self.rng.shuffle(kills)
        chaos = [kills[phase::3] for phase in range(3)]
        self.chaos(batches[0], chaos[0])
        self.outage("postgres", batches[1], scale.outage_seconds)
        self.chaos(batches[2], chaos[1])
        self.outage("s3", batches[3], scale.outage_seconds)
        self.chaos(batches[4], chaos[2])
        return files

    def chaos(self, files: list[ChaosFile], kills: list[str]) -> None:
        """Drop the files and make the kills, interleaved in a random order."""
        events: list[ChaosFile | str] = [*files, *kills]
        self.rng.shuffle(events)
        for event in events:
            if isinstance(event, ChaosFile):
                self.drop(event)
                self._pause(0.0, 0.3)
            else:
                self._pause(0.2, 2.0)  # a random moment in whatever is in flight
                self.kill(event)

    def drop(self, file: ChaosFile) -> None:
        file.drop(self.cluster.inbox)
        self.figures.files += 1
        self.figures.bytes += len(file.data)

    def kill(self, kind: str) -> None:
        """``kill -9`` one process of the kind; it is back before the next event.

        A processor is killed while it holds a lease, and the watcher while it sends a file, if
        one does within a moment: a kill of an idle process would test little."""
        if kind == "processor":
            # One draw whatever is busy: what the RNG yields next must not depend on timing,
            # or a replay would drift from the run it replays.
            pick = self.rng.random()
            busy = _within(AIM_SECONDS, self.cluster.busy_processors)
            self.figures.mid_work[kind] += bool(busy)
            among = busy or list(range(len(self.cluster.processors)))
            self.cluster.kill_processor(among[int(pick * len(among))])
        elif kind == "replica":
            index = self.rng.randrange(len(self.cluster.replicas))
            self.cluster.kill_replica(index)
            self._pause(0.0, 2.0)
            self.cluster.restart_replica(index)
        else:
            self.figures.mid_work[kind] += bool(
                _within(AIM_SECONDS, self.cluster.uploads_in_flight)
            )
            self.cluster.kill_watcher()
            self._pause(0.0, 2.0)
            self.cluster.restart_watcher()
        self.figures.kills[kind] += 1

    def outage(self, service: str, files: list[ChaosFile], seconds: float) -> None:
        """Stop the service for ``seconds`` while files keep arriving, then start it again."""
        drops = sorted((self.rng.uniform(0, seconds), n) for n in range(len(files)))
        if service == "postgres":
            self.cluster.postgres.stop()
        else:
            self.cluster.weed.stop()
        began = time.monotonic()
        for at, n in drops:
            _sleep_until(began + at)
            self.drop(files[n])
        _sleep_until(began + seconds)
        if service == "postgres":
            self.cluster.postgres.start()
        else:
            self.cluster.weed.start().wait_ready()
        self.figures.outages[service] += time.monotonic() - began

    def _pause(self, low: float, high: float) -> None:
        # The chaos's own rhythm, drawn from the seed: not a wait for anything.
        time.sleep(self.rng.uniform(low, high))


def _within(seconds: float, look: Callable[[], T]) -> T:
    """What ``look`` answers once it is truthy, or at the deadline."""
    deadline = time.monotonic() + seconds
    while not (seen := look()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))
