"""The job state machine: the states of an upload's job, the moves between them, the final ones.

One table for every role. The server's store writes a state only through a :class:`Transition`
made by :func:`transition`, which checks it against the table when it is defined (at import), so
a move the table does not allow cannot be written; client and CLI read the states off the wire.

::

    pending ──first chunk──▶ queued ──lease──▶ leased ──complete──▶ done
       │                     │   ▲               │
       │                     │   └───────────────┤ failed or lapsed, attempts left;
       │                     │                   │ or handed back unanswered
       │                     │ abandoned         │ failed or lapsed, no attempt left
       └──abandoned───────▶ failed ◀─────────────┘

An upload is created pending, or queued when it has no chunk to wait for (an empty file).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = (
    "INITIAL_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "JobState",
    "Transition",
    "transition",
)


class JobState(enum.StrEnum):
    """The state of an upload's job. On the wire (msgspec) and in the store: the value."""

    PENDING = "pending"  # created, no chunk stored yet
    QUEUED = "queued"  # leasable: a chunk at least is stored (or there are none)
    LEASED = "leased"  # a worker holds it
    DONE = "done"  # a sealed result is stored
    FAILED = "failed"  # no result: after max_attempts, or abandoned (error says why)


INITIAL_STATES: frozenset[JobState] = frozenset({JobState.PENDING, JobState.QUEUED})
TERMINAL_STATES: frozenset[JobState] = frozenset({JobState.DONE, JobState.FAILED})

# Each state → the states a job may move to from it. Nothing leaves a terminal state: a result,
# once recorded, is the one the uploader gets; a failed upload takes no more chunks.
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {
        JobState.PENDING: frozenset({JobState.QUEUED, JobState.FAILED}),
        JobState.QUEUED: frozenset({JobState.LEASED, JobState.FAILED}),
        JobState.LEASED: frozenset({JobState.QUEUED, JobState.DONE, JobState.FAILED}),
        JobState.DONE: frozenset(),
        JobState.FAILED: frozenset(),
    }
)


@dataclass(frozen=True, slots=True)
class Transition:
    """A move the table allows: from any of ``sources`` to ``target``. Made by :func:`transition`."""

    sources: frozenset[JobState]
    target: JobState


def transition(source: JobState | Iterable[JobState], target: JobState) -> Transition:
    """The move from ``source`` (a state, or several) to ``target``.

    Raises ValueError unless the table allows it from every source. Defined as a module constant
    beside the statement that makes the move, so an illegal move fails at import, in every test.
    """
    sources = frozenset({source} if isinstance(source, JobState) else source)
    if not sources:
        raise ValueError(f"A move to {target} must name the states it leaves.")
    illegal = sorted(state for state in sources if target not in TRANSITIONS[state])
    if illegal:
        raise ValueError(f"A job may not move from {', '.join(illegal)} to {target}.")
    return Transition(sources, target)
