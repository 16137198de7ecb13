"""A watch that stops cancels its result waiter: the cancel ends the waiter even when it comes
while the waiter is still putting its own long-poll down (a poll slow to end)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from fap.api import ApiSession
from fap.client.results import ResultWaiter


class SlowToStop:
    """A session whose long-poll never answers and takes a while to end once cancelled."""

    def __init__(self) -> None:
        self.polling = asyncio.Event()
        self.stopping = asyncio.Event()

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        self.polling.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.stopping.set()
            await asyncio.sleep(0.2)  # a connection being closed
            raise


async def test_a_cancel_while_the_waiter_puts_its_poll_down_is_not_swallowed() -> None:
    session = SlowToStop()
    waiter = ResultWaiter(cast(ApiSession, session))

    async def on_finished(info: Any) -> None:
        pass

    waiter.add("6618f0aa00000000000000000000beef", on_finished)
    running = asyncio.create_task(waiter.run())
    await session.polling.wait()
    waiter.add("6618f0aa00000000000000000000cafe", on_finished)  # the poll is put down, to restart
    await session.stopping.wait()
    running.cancel()  # the watch stops just then

    done, _ = await asyncio.wait({running}, timeout=5)

    assert done, "the waiter went on after it was cancelled"
    assert running.cancelled()
