"""A coroutine the server runs beside its requests for as long as it serves (the sweeper, the
clean-up, the wake-up listener, the event-loop lag probe): started once, stopped by cancelling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ("BackgroundTask",)


class BackgroundTask:
    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start it, unless it runs already (start-up may be asked twice; one task is wanted)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Cancel it and wait until it has stopped; whatever it raised on the way out is moot."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
