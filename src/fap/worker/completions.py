"""Completions that carry their sealed results, sent for many jobs at once.

A small file's job ends in a result of a few hundred bytes; storing it through a URL of its own
would cost two requests more than the completion itself. So a job whose sealed result is at most
``MAX_INLINE_RESULT`` hands it here, and the completions of every job that finishes while one
request is on its way go together in the next (``POST /v1/jobs/completions``): no waiting for a
batch to fill, and one request (one transaction) for as many jobs as finish meanwhile.

Each completion is answered on its own: a lease that is no longer current costs only its own job
(ConflictError), and what the server refused for one job is a ServerError of that job's. A request
that fails as a whole (the server out of reach) fails every completion it carried; the session
already retried it, and the very same completions sent again are answered as the first were.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from fap.api import (
    JOB_COMPLETIONS,
    MAX_COMPLETIONS,
    MAX_INLINE_RESULTS,
    ApiSession,
    CompletionOutcomes,
    Completions,
    JobCompletion,
)
from fap.errors import ConflictError, FapError, ServerError

__all__ = ("CompletionSender",)


@dataclass
class _Waiting:
    completion: JobCompletion
    answered: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CompletionSender:
    """Sends the completions handed to it, as many in one request as are waiting."""

    def __init__(self, session: ApiSession) -> None:
        self._session = session
        self._waiting: list[_Waiting] = []
        self._sending: asyncio.Task[None] | None = None
        # False once the server answered that it has no such route (an older one).
        self.supported = True

    async def complete(self, completion: JobCompletion) -> None:
        """Record ``completion``; ConflictError if its lease is not current, ServerError if the
        server refused it or could not be told (ServerUnreachable)."""
        waiting = _Waiting(completion)
        self._waiting.append(waiting)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send_all(), name="completions")
        await waiting.answered  # cancelled with the job: the sender then leaves it be

    async def aclose(self) -> None:
        """Stop sending: completions still waiting are cancelled (their leases lapse)."""
        if self._sending is not None:
            self._sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sending
        for waiting in self._waiting:
            waiting.answered.cancel()
        self._waiting.clear()

    async def _send_all(self) -> None:
        while self._waiting:
            batch = self._next_batch()
            try:
                answer = await self._session.call(
                    "POST",
                    JOB_COMPLETIONS,
                    Completions(completions=[waiting.completion for waiting in batch]),
                    returns=CompletionOutcomes,
                )
            except FapError as error:  # every completion it carried is answered with it
                if isinstance(error, ServerError) and error.route_missing:
                    self.supported = False
                for waiting in batch:
                    _answer(waiting, error)
                continue
            except BaseException as error:  # stopping (or a bug): no job waits on for ever
                for waiting in batch:
                    if isinstance(error, asyncio.CancelledError):
                        waiting.answered.cancel()
                    else:
                        _answer(waiting, error)
                raise
            _answer_each(batch, answer)

    def _next_batch(self) -> list[_Waiting]:
        """The oldest waiting completions, as many as one request may carry."""
        batch: list[_Waiting] = []
        size = 0
        while self._waiting and len(batch) < MAX_COMPLETIONS:
            size += len(self._waiting[0].completion.result)
            if batch and size > MAX_INLINE_RESULTS:
                break
            batch.append(self._waiting.pop(0))
        return batch


def _answer_each(batch: list[_Waiting], answer: CompletionOutcomes) -> None:
    if len(answer.outcomes) != len(batch):
        error = ServerError(
            f"The server answered {len(answer.outcomes)} of {len(batch)} completions."
        )
        for waiting in batch:
            _answer(waiting, error)
        return
    for waiting, outcome in zip(batch, answer.outcomes, strict=True):
        job_id = waiting.completion.job_id
        if outcome.job_id != job_id:
            _answer(
                waiting, ServerError(f"The server answered for job {outcome.job_id}, not {job_id}.")
            )
        elif outcome.status == "done":
            _answer(waiting, None)
        elif outcome.status == "conflict":
            _answer(waiting, ConflictError(outcome.error or "the lease is not current"))
        else:
            _answer(
                waiting,
                ServerError(
                    f"The server refused the completion of job {job_id}: "
                    f"{(outcome.error or 'no reason given').rstrip('.')}.",
                    400,
                ),
            )


def _answer(waiting: _Waiting, error: BaseException | None) -> None:
    if waiting.answered.done():  # the job gave up waiting (it was cancelled)
        return
    if error is None:
        waiting.answered.set_result(None)
    else:
        waiting.answered.set_exception(error)
