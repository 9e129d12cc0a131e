"""Poll, or start sooner when woken: the idle wait of the event consumers (webhooks, hooks).

A consumer's own process wakes it after a write it served; other processes' events are found by
polling. A `NOTIFY` per event is not used: PostgreSQL queues notifications at commit under one
database-wide lock, which would serialise every write (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib

#: Woken passes start at most this often: under a stream of writes one pass serves many.
WAKE_GAP = 0.02


class Wakeup:
    def __init__(self, poll_interval: float, gap: float = WAKE_GAP) -> None:
        self.poll_interval = poll_interval
        self.gap = gap
        self._event = asyncio.Event()
        self._started = 0.0

    def wake(self) -> None:
        self._event.set()

    def begin_pass(self) -> None:
        """Call as a pass starts: a wake-up during the pass starts another one after it."""
        self._event.clear()
        self._started = asyncio.get_running_loop().time()

    async def idle(self) -> None:
        """Wait for a wake-up or the poll interval, and at least `gap` since the pass began."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), self.poll_interval)
        rest = self.gap - (asyncio.get_running_loop().time() - self._started)
        if rest > 0:
            await asyncio.sleep(rest)
