"""The statements that move a job between states: the only way the store writes a job's state
(besides :func:`created_in`, the state an upload starts in). A test holds the store to it.

Each takes a :class:`~fap.api.Transition`, which the state machine's table checked when it was
defined, and both sets its target and requires one of its sources: a conditional UPDATE that
finds the row in another state (a race lost) changes nothing, and the caller counts the rows.
"""

from __future__ import annotations

from sqlalchemy import Case, ColumnElement, Update, case, literal, update

from fap.api import INITIAL_STATES, JobState, Transition
from fap.server.store.models import JobStateColumn, Upload

__all__ = ("created_in", "in_source", "moving", "state_after")


def created_in(state: JobState) -> JobState:
    """``state``, for a new upload's row: ValueError unless an upload may start in it."""
    if state not in INITIAL_STATES:
        raise ValueError(f"An upload cannot be created {state}.")
    return state


def in_source(move: Transition) -> ColumnElement[bool]:
    """The upload is in one of the states ``move`` leaves. One state is compared plainly: an IN
    list is expanded per execution, which an executemany cannot do."""
    if len(move.sources) == 1:
        (source,) = move.sources
        return Upload.state == source
    return Upload.state.in_(sorted(move.sources))


def moving(move: Transition) -> Update:
    """UPDATE of the uploads in a source state of ``move`` to its target; the caller adds the
    row's other conditions and values."""
    return update(Upload).where(in_source(move)).values(state=move.target)


def state_after(move: Transition) -> Case[JobState]:
    """The state a row has after ``move`` where it applies and keeps elsewhere: for a statement
    that moves only some of the rows it changes (``UPDATE … SET state = CASE …``)."""
    target = literal(move.target, JobStateColumn())
    return case((in_source(move), target), else_=Upload.state)
