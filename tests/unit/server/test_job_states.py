"""The store moves jobs only as the state machine's table allows (fap.api.states).

Every store call that changes a job's state is made here on a real database, and every change it
makes is checked against the table; every move the store declares is seen made. A statement that
writes a state outside the moves (``store/moves.py``) is refused by reading the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import select
from tests.unit.server.harness import Server, both_backends

from fap.api import INITIAL_STATES, TRANSITIONS, JobState, Transition
from fap.server.auth import hash_token
from fap.server.store import Chunk, NewUpload, Upload, jobs, members, retention, uploads
from fap.server.store.retention import Retention

STORE = Path(__file__).resolve().parents[3] / "src" / "fap" / "server" / "store"
DECLARED: tuple[Transition, ...] = jobs.MOVES + uploads.MOVES + retention.MOVES + members.MOVES


class StateWatch:
    """Every upload's state after each step, and each move seen between two looks."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._states: dict[str, JobState] = {}
        self.moves: set[tuple[JobState, JobState]] = set()

    async def look(self) -> None:
        async with self._server.services.store.db.read() as session:
            rows = await session.execute(select(Upload.id, Upload.state))
            now = {upload_id: state for upload_id, state in rows}
        for upload_id, state in now.items():
            assert isinstance(state, JobState)  # the row holds the enum, not a bare string
            before = self._states.get(upload_id)
            if before is None:
                assert state in INITIAL_STATES, f"{upload_id} was created {state}"
            elif before != state:
                assert state in TRANSITIONS[before], f"{upload_id} moved {before} → {state}"
                self.moves.add((before, state))
        self._states = now


@both_backends
async def test_every_move_the_store_makes_is_one_the_table_allows(server: Server) -> None:
    store = server.services.store
    owner = await store.credentials.resolve(hash_token(server.owner), server.clock())
    assert owner is not None and owner.user is not None
    org, user = owner.org.id, owner.user.id
    watch = StateWatch(server)

    async def create(engine: str, chunks: int) -> Upload:
        new = NewUpload(
            org_id=org,
            user_id=user,
            name=f"{engine}-file",
            size=chunks,
            sha256="0" * 64,
            engine=engine,
            chunk_size=1,
            chunk_count=chunks,
        )
        made = await store.uploads.create(new, server.clock())
        await watch.look()
        return made

    async def store_chunk(upload: Upload, seq: int) -> None:
        chunk = Chunk(
            upload_id=upload.id,
            seq=seq,
            raw_size=1,
            stored_size=1,
            codec="raw",
            sha256="1" * 64,
            stored_at=server.clock(),
        )
        await store.uploads.record_chunk(upload.id, chunk)
        await watch.look()

    async def lease(engine: str) -> str:
        (job,) = await store.jobs.lease_many(org, [engine], "w1", 30, server.clock())
        await watch.look()
        assert job.lease_token is not None
        return job.lease_token

    # Each job runs its own engine, so that each lease takes the job the step means.
    empty = await create("empty@1", 0)  # queued at once: nothing to wait for
    token = await lease("empty@1")
    assert await store.jobs.complete(empty.id, token, 10, "2" * 64, server.clock())
    await watch.look()

    retried = await create("retried@1", 2)
    await store_chunk(retried, 0)  # the first chunk queues it
    await store_chunk(retried, 1)
    token = await lease("retried@1")
    assert await store.jobs.release(retried.id, token, "crashed", True, server.clock())
    await watch.look()
    token = await lease("retried@1")
    assert await store.jobs.release(retried.id, token, "crashed", False, server.clock())
    await watch.look()

    unheard = await create("unheard@1", 1)
    await store_chunk(unheard, 0)
    token = await lease("unheard@1")
    assert await store.jobs.unlease(unheard.id, token, server.clock())
    await watch.look()

    lapsing = await create("lapsing@1", 1)
    await store_chunk(lapsing, 0)
    await lease("lapsing@1")
    server.clock.advance(31)
    assert len(await store.jobs.sweep(2, server.clock())) == 1  # attempt 1 of 2: queued again
    await watch.look()
    await lease("lapsing@1")
    server.clock.advance(31)
    assert len(await store.jobs.sweep(2, server.clock())) == 1  # its last attempt: failed
    await watch.look()

    never_sent = await create("abandoned@1", 2)
    half_sent = await create("abandoned@1", 2)
    await store_chunk(half_sent, 0)
    server.clock.advance(60)
    abandoned = await Retention(store.db).abandon(server.clock(), "gone", server.clock(), 10)
    await watch.look()
    assert {upload.id for upload in abandoned} == {never_sent.id, half_sent.id}

    declared = {(source, move.target) for move in DECLARED for source in move.sources}
    assert watch.moves == declared


def test_the_store_writes_a_state_only_through_its_moves() -> None:
    """``state=…`` in a store statement is spelled in moves.py, or is the state an upload is
    created in (``created_in``) or a CASE made of a move (``state_after``): anything else would
    be a move the table never checked."""
    offenders: list[str] = []
    for path in sorted(STORE.glob("*.py")):
        if path.name == "moves.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg != "state":
                    continue
                value = keyword.value
                through_moves = (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Name)
                    and value.func.id in {"created_in", "state_after"}
                )
                if not through_moves:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
