"""In-process wake-ups: a publish between a check and the wait is never lost; a held long-poll
rides out a store outage."""

from __future__ import annotations

import asyncio
import time

import pytest

from fap.server.errors import StoreUnavailable
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


def store_down() -> StoreUnavailable:
    return StoreUnavailable("The state store cannot be reached: down.", lost_connection=False)


async def test_a_poll_whose_first_check_finds_the_store_down_is_refused_at_once() -> None:
    async def down() -> str | None:
        raise store_down()

    with pytest.raises(StoreUnavailable):
        await long_poll(LocalNotifier(), ["t"], down, 5)


async def test_a_held_poll_rides_out_an_outage_and_answers_once_the_store_is_back() -> None:
    notifier = LocalNotifier()
    answers: list[str | StoreUnavailable | None] = [None, store_down(), store_down(), "ready"]

    async def check() -> str | None:
        answer = answers.pop(0)
        if isinstance(answer, StoreUnavailable):
            raise answer
        return answer

    polling = asyncio.create_task(long_poll(notifier, ["t"], check, 30))
    while not notifier.waiting("t"):
        await asyncio.sleep(0.001)
    await notifier.publish("t")  # the wake-up whose re-check finds the store down
    assert await asyncio.wait_for(polling, 10) == "ready"
    assert answers == []


async def test_a_held_poll_still_out_of_reach_at_its_deadline_is_refused() -> None:
    checks: list[int] = []

    async def down_after_the_first() -> str | None:
        checks.append(1)
        if len(checks) > 1:
            raise store_down()
        return None

    notifier = LocalNotifier()
    polling = asyncio.create_task(long_poll(notifier, ["t"], down_after_the_first, 1))
    while not notifier.waiting("t"):
        await asyncio.sleep(0.001)
    await notifier.publish("t")
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(polling, 10)
    assert len(checks) >= 3  # checked again after the failed re-check, until the deadline
