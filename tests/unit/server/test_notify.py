"""In-process wake-ups: a publish between a check and the wait is never lost."""

from __future__ import annotations

import asyncio
import time

from fap.server.queue.notify import LocalNotifier, long_poll


async def test_a_publish_before_the_wait_is_kept() -> None:
    notifier = LocalNotifier()
    async with notifier.listen("t") as listener:
        await notifier.publish("t")
        assert await listener.wait(5) is True  # woken; a wait that timed out answers False


async def test_long_poll_rechecks_after_each_wake_and_times_out() -> None:
    notifier = LocalNotifier()
    checks: list[int] = []

    async def check() -> str | None:
        checks.append(1)
        return "ready" if len(checks) == 3 else None

    async def poke() -> None:
        while len(checks) < 3:
            await notifier.publish("t")
            await asyncio.sleep(0.01)

    poker = asyncio.create_task(poke())
    assert await long_poll(notifier, ["t"], check, 5) == "ready"
    await poker

    async def never() -> str | None:
        return None

    start = time.monotonic()
    assert await long_poll(notifier, ["t"], never, 0.05) is None
    assert time.monotonic() - start >= 0.04


async def test_stop_ends_waits_and_forgets_listeners() -> None:
    notifier = LocalNotifier()

    async def never() -> str | None:
        return None

    waiting = asyncio.create_task(long_poll(notifier, ["t"], never, 5))
    while not notifier.waiting("t"):
        await asyncio.sleep(0.001)
    notifier.stop()
    assert await asyncio.wait_for(waiting, 1) is None
    assert notifier.waiting("t") == 0
