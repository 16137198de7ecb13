"""The job state machine: one enum, one table of moves; on the wire each state is its value."""

from __future__ import annotations

import msgspec
import pytest

from fap.api import (
    INITIAL_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    ChunkStored,
    JobState,
    UploadInfo,
    transition,
)


def upload_info(state: JobState) -> UploadInfo:
    return UploadInfo(
        id="u1",
        name="a.csv",
        size=1,
        sha256="0" * 64,
        engine="size@1",
        chunk_size=1,
        chunk_count=1,
        chunks_stored=[0],
        state=state,
        attempts=0,
        error=None,
        created_at=1.0,
        finished_at=None,
    )


@pytest.mark.parametrize("state", list(JobState))
def test_a_state_goes_over_the_wire_as_its_value_and_comes_back_as_the_enum(
    state: JobState,
) -> None:
    encoded = msgspec.json.encode(upload_info(state))
    assert msgspec.json.decode(encoded)["state"] == state.value
    decoded = msgspec.json.decode(encoded, type=UploadInfo)
    assert decoded.state is state


def test_the_wire_values_are_those_of_api_v1() -> None:
    # Changing one breaks every client already released: the values are the contract.
    assert [state.value for state in JobState] == ["pending", "queued", "leased", "done", "failed"]


def test_a_state_the_contract_does_not_know_is_refused() -> None:
    body = msgspec.json.encode(
        {"upload_id": "u1", "seq": 0, "stored": 1, "chunk_count": 1, "state": "paused"}
    )
    with pytest.raises(msgspec.ValidationError, match="state"):
        msgspec.json.decode(body, type=ChunkStored)


def test_the_table_names_every_state() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert all(targets <= set(JobState) for targets in TRANSITIONS.values())


def test_nothing_leaves_a_terminal_state() -> None:
    assert {JobState.DONE, JobState.FAILED} == TERMINAL_STATES
    for state in TERMINAL_STATES:
        assert TRANSITIONS[state] == frozenset()


def test_every_state_is_reached_from_a_start_and_every_job_can_finish() -> None:
    reached = set(INITIAL_STATES)
    frontier = list(INITIAL_STATES)
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(JobState)
    # A job that is not finished can always still be: some move out of it leads closer to an end.
    can_finish = set(TERMINAL_STATES)
    while True:
        more = {s for s, targets in TRANSITIONS.items() if targets & can_finish} - can_finish
        if not more:
            break
        can_finish |= more
    assert can_finish == set(JobState)


def test_a_job_is_leased_only_from_the_queue_and_done_only_from_a_lease() -> None:
    assert {s for s, targets in TRANSITIONS.items() if JobState.LEASED in targets} == {
        JobState.QUEUED
    }
    assert {s for s, targets in TRANSITIONS.items() if JobState.DONE in targets} == {
        JobState.LEASED
    }


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (JobState.DONE, JobState.QUEUED),  # a recorded result is never replaced
        (JobState.FAILED, JobState.QUEUED),
        (JobState.PENDING, JobState.LEASED),  # nothing to read yet
        (JobState.QUEUED, JobState.DONE),  # a result without a lease holder
        (JobState.LEASED, JobState.PENDING),
    ],
)
def test_a_move_the_table_lacks_cannot_be_defined(source: JobState, target: JobState) -> None:
    with pytest.raises(ValueError, match=f"from {source} to {target}"):
        transition(source, target)


def test_a_move_from_several_states_must_be_allowed_from_each() -> None:
    move = transition((JobState.PENDING, JobState.QUEUED), JobState.FAILED)
    assert move.sources == {JobState.PENDING, JobState.QUEUED}
    assert move.target is JobState.FAILED
    # Leasing is allowed from queued, not from pending: the move as a whole is refused.
    with pytest.raises(ValueError, match="from pending to leased"):
        transition((JobState.PENDING, JobState.QUEUED), JobState.LEASED)
    with pytest.raises(ValueError, match="name the states"):
        transition((), JobState.FAILED)
