"""Health and the organisation's live status."""

from __future__ import annotations

from litestar import get

from fap.api import HEALTHZ, STATUS, JobState, StatusReport, WorkerInfo
from fap.server.auth import Permission, needs
from fap.server.routes.deps import CallerDep, ServicesDep

__all__ = ("ONLINE_SECONDS", "healthz", "status")

# A worker long-polls for a lease at least every ~20 s; one silent for a minute is gone.
ONLINE_SECONDS = 60.0


@get(HEALTHZ, include_in_schema=True)
async def healthz() -> dict[str, str]:
    """No token; answers once the server is ready (the app answers only after start-up)."""
    return {"status": "ok"}


@get(STATUS, opt=needs(Permission.READ))
async def status(caller: CallerDep, services: ServicesDep) -> StatusReport:
    workers, by_state = await services.store.jobs.status(
        caller.org.id, services.clock(), ONLINE_SECONDS
    )
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
    )
