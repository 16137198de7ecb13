"""Health and the organisation's live status."""

from __future__ import annotations

from litestar import get

from fap.api import HEALTHZ, STATUS, EngineStatus, JobState, StatusReport, WorkerInfo
from fap.server.auth import Permission, needs
from fap.server.routes.deps import CallerDep, ServicesDep
from fap.server.store import WorkerSeen

__all__ = ("ONLINE_SECONDS", "healthz", "status")

# A worker long-polls for a lease at least every ~20 s; one silent for a minute is gone.
ONLINE_SECONDS = 60.0


@get(HEALTHZ, include_in_schema=True)
async def healthz() -> dict[str, str]:
    """No token; answers once the server is ready (the app answers only after start-up)."""
    return {"status": "ok"}


@get(STATUS, opt=needs(Permission.READ))
async def status(caller: CallerDep, services: ServicesDep) -> StatusReport:
    """Workers online, jobs by state, and per engine version the processors serving it and the
    jobs waiting for it."""
    org_id, now = caller.org.id, services.clock()
    workers, by_state = await services.store.jobs.status(org_id, now, ONLINE_SECONDS)
    live = await services.store.jobs.live_by_engine(org_id)
    # Every state, those without jobs too, in the state machine's order.
    jobs: dict[str, int] = {state: by_state.get(state, 0) for state in JobState}
    return StatusReport(
        workers=[
            WorkerInfo(
                worker_id=w.worker_id,
                engines=w.engines,
                last_seen=w.last_seen,
                active_jobs=w.active_jobs,
            )
            for w in workers
        ],
        jobs=jobs,
        queue_depth=jobs[JobState.QUEUED],
        engines=engines_status(workers, live, caller.org.default_engine),
        default_engine=caller.org.default_engine,
    )


def engines_status(
    workers: list[WorkerSeen], live: dict[str, tuple[int, int]], default_engine: str
) -> list[EngineStatus]:
    """Each engine a processor online runs, a job waits for or the organisation pins, by name:
    a version with jobs and no processor shows, and so does a pin nothing serves yet."""
    serving: dict[str, list[str]] = {}
    for worker in workers:
        for engine in dict.fromkeys(worker.engines):
            serving.setdefault(engine, []).append(worker.worker_id)
    names = sorted({*serving, *live, default_engine})
    return [
        EngineStatus(
            engine=name,
            processors=serving.get(name, []),
            waiting=live.get(name, (0, 0))[0],
            running=live.get(name, (0, 0))[1],
        )
        for name in names
    ]
