"""The status report grew per-engine fields: older and newer peers still decode each other."""

from __future__ import annotations

import msgspec

from fap.api import EngineStatus, StatusReport, Struct, WorkerInfo


class OldStatusReport(Struct):
    """The report as clients before API version 2026-12-01 declare it."""

    workers: list[WorkerInfo]
    jobs: dict[str, int]
    queue_depth: int


def test_an_older_client_decodes_the_new_report() -> None:
    new = StatusReport(
        workers=[WorkerInfo(worker_id="w", engines=["size@1"], last_seen=1.0, active_jobs=0)],
        jobs={"queued": 1},
        queue_depth=1,
        engines=[EngineStatus(engine="size@1", processors=["w"], waiting=1, running=0)],
        default_engine="size@1",
    )
    decoded = msgspec.json.decode(msgspec.json.encode(new), type=OldStatusReport)
    assert (decoded.queue_depth, decoded.jobs, decoded.workers) == (1, new.jobs, new.workers)


def test_a_newer_client_decodes_an_older_servers_report() -> None:
    older = msgspec.json.encode(OldStatusReport(workers=[], jobs={}, queue_depth=0))
    decoded = msgspec.json.decode(older, type=StatusReport)
    assert (decoded.engines, decoded.default_engine) == ([], None)
