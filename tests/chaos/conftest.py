"""The chaos test's knobs (how long, which seed) and its deployment.

``make test`` runs the short form: one round, outages of 5 s, a few kills of each kind, on a fixed
seed (the same script in every CI run: a red build is a replayable one, not a roll of the dice).
``make soak`` sets ``SOAK_ROUNDS``: that many rounds, each with outages of 30 s and more kills, on a
fresh seed each time. ``CHAOS_SEED=N`` replays a run: the seed is printed at the start of every run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.cluster import Cluster
from tests.chaos.driver import Scale
from tests.support.postgres import PrivateServer, create_database
from tests.support.seaweedfs import SeaweedFSError, running_seaweedfs

SHORT = Scale(
    rounds=1, files=30, kills={"processor": 2, "replica": 1, "watcher": 2}, outage_seconds=5.0
)


def soak(rounds: int) -> Scale:
    return Scale(
        rounds=rounds,
        files=100,
        kills={"processor": 5, "replica": 2, "watcher": 3},
        outage_seconds=30.0,
    )


Say = Callable[[str], None]


@pytest.fixture
def say(capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None]) -> Say:
    """Print a line to the terminal as the test runs, past pytest's capture, and record it among
    the run's figures, which the end of the run prints (also when pytest-xdist runs the test in a
    worker, whose prints never show): the CI log has it either way."""

    def say(line: str) -> None:
        record_property("figures", line)
        with capsys.disabled():
            print(f"\n{line}", flush=True)

    return say


# The short form's script; any seed must pass, this one is what every `make test` runs.
SHORT_SEED = 449104


@pytest.fixture
def chaos_seed(say: Say) -> int:
    """The seed of every random choice of the run: ``CHAOS_SEED``, else the short form's own, else
    (a soak) a fresh one."""
    given = os.environ.get("CHAOS_SEED")
    if given:
        seed = int(given)
    elif os.environ.get("SOAK_ROUNDS"):
        seed = secrets.randbelow(1_000_000)
    else:
        seed = SHORT_SEED
    say(f"chaos seed: {seed} (replay with CHAOS_SEED={seed})")
    return seed


@pytest.fixture
def chaos_scale() -> Scale:
    rounds = os.environ.get("SOAK_ROUNDS")
    return soak(int(rounds)) if rounds else SHORT


@pytest.fixture
def cluster(tmp_path: Path, private_postgres: PrivateServer) -> Iterator[Cluster]:
    """The deployment, started; every process stopped after the test, whatever happened."""
    database = create_database(private_postgres.admin)
    db_url = private_postgres.admin.rsplit("/", 1)[0] + f"/{database}"
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    inbox.mkdir()
    with contextlib.ExitStack() as stack:
        try:
            weed = stack.enter_context(running_seaweedfs())
        except SeaweedFSError as error:
            pytest.fail(f"SeaweedFS could not start: {error}", pytrace=False)
        cluster = Cluster(
            tmp=tmp_path,
            postgres=private_postgres,
            db_url=db_url,
            weed=weed,
            storage=weed.new_bucket(),
            inbox=inbox,
            results=results,
        )
        stack.callback(cluster.stop)  # before the object store stops: the newest goes first
        yield cluster.start()
