"""Chaos: files flow through two replicas and three processors while processes die and services go.

A seeded driver drops files of 0 B to several chunks into a watched folder and, at random moments,
``kill -9``s a processor, a replica (started again) or the watcher (started again); PostgreSQL and
the S3 server are each stopped for a while and started again (5 s in the short form ``make test``
runs, 30 s in ``make soak``). At the end every file has exactly one upload and one correct result
— the reference engine's answer for its bytes, decrypted by the watcher: nothing lost, nothing
doubled. The seed is printed first; ``CHAOS_SEED=N`` replays a run.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.chaos.cluster import Cluster
from tests.chaos.conftest import Say
from tests.chaos.corpus import ChaosFile, expected_result
from tests.chaos.driver import Driver, Figures, Scale
from tests.support.processes import wait_until
from tests.support.secrets_scan import SecretScan, logs_under

pytestmark = pytest.mark.e2e

# Time for the work in flight when the chaos stops to finish, on a busy machine: a bound for a
# failure to be reported by, not a figure the run is expected to come near.
DRAIN_SECONDS = 240.0


def test_every_file_gets_one_upload_and_one_correct_result_whatever_dies(
    chaos_seed: int, chaos_scale: Scale, cluster: Cluster, say: Say
) -> None:
    rng = random.Random(chaos_seed)
    figures = Figures()
    driver = Driver(cluster, rng, figures)
    started = time.monotonic()
    files: list[ChaosFile] = []
    for number in range(chaos_scale.rounds):
        round_started = time.monotonic()
        files += driver.round(number, chaos_scale)
        wait_for_every_result(cluster, files, chaos_seed)
        assert_each_file_once(cluster, files, chaos_seed)
        figures.round_seconds.append(time.monotonic() - round_started)
        say(f"chaos round {number + 1}/{chaos_scale.rounds}: {figures.summary()}")

    attempts = Counter(row.attempts for row in cluster.uploads())
    say(
        f"chaos seed {chaos_seed}: {figures.summary()}; uploads by attempts {dict(attempts)}; "
        f"{time.monotonic() - started:.1f} s"
    )
    stopped = cluster.stop_watcher()
    assert stopped == 0, f"fap watch exited {stopped}:\n{cluster.watcher.current.log()[-3000:]}"
    assert_logs_clean(cluster)


def wait_for_every_result(cluster: Cluster, files: list[ChaosFile], seed: int) -> None:
    """Until every file's result is written; an upload that failed ends the wait at once."""
    expected = {_result_path(cluster.results, file.name) for file in files}

    def all_written() -> bool:
        exited = cluster.exited()
        assert not exited, f"seed {seed}: {exited} exited\n{cluster.log_tails()}"
        failed = [row for row in cluster.uploads() if row.state == "failed"]
        assert not failed, f"seed {seed}: uploads failed: {failed}\n{cluster.log_tails()}"
        return all(path.exists() for path in expected)

    try:
        wait_until(all_written, DRAIN_SECONDS, "every result", interval=0.5)
    except TimeoutError:
        missing = sorted(str(p.relative_to(cluster.results)) for p in expected if not p.exists())
        states = Counter(row.state for row in cluster.uploads())
        pytest.fail(
            f"seed {seed}: {len(missing)} of {len(expected)} results missing after "
            f"{DRAIN_SECONDS:g} s (uploads by state: {dict(states)}): {missing[:10]}\n"
            f"{cluster.log_tails()}"
        )


def assert_each_file_once(cluster: Cluster, files: list[ChaosFile], seed: int) -> None:
    """One upload per file, done; one result per file, the reference engine's; nothing else."""
    names = {file.name for file in files}
    uploads = cluster.uploads()
    per_name = Counter(row.name for row in uploads)
    doubled = [row for row in uploads if per_name[row.name] > 1]
    assert not doubled, f"seed {seed}: files uploaded more than once: {doubled}"
    assert set(per_name) == names, f"seed {seed}: uploads of unknown files or none"
    assert {row.state for row in uploads} == {"done"}, f"seed {seed}: {uploads}"

    written = {p.relative_to(cluster.results) for p in cluster.results.rglob("*.result.json")}
    assert written == {Path(f"{name}.result.json") for name in names}, f"seed {seed}"
    for file in files:
        result = json.loads(_result_path(cluster.results, file.name).read_text())
        expected = expected_result(cluster.inbox / file.name, file.name)
        assert result == expected, f"seed {seed}: the result of {file.name!r} is wrong"


def assert_logs_clean(cluster: Cluster) -> None:
    """In the log of every life of every process: not one token, key, lease token or URL
    signature, and no traceback — a dead peer or a lost service is met with a sentence."""
    logs = logs_under(cluster.tmp / "logs")
    scan = SecretScan()
    scan.add_tree(cluster.tmp)
    scan.add_database(cluster.db_url)
    scan.add_env(cluster.storage.env)
    scan.check(logs)
    tracebacks = [name for name, text in logs.items() if "Traceback" in text]
    assert not tracebacks, f"tracebacks in {tracebacks}"


def _result_path(results: Path, name: str) -> Path:
    return results / f"{name}.result.json"
