"""Loop-lag monitor: how late a short sleep wakes up is how long something blocked the loop.

It catches blocking the bus cannot time itself (an async handler that blocks between awaits, a
slow intent handler, a sync call in a channel). The report names the last bus handler called
during the stalled interval, if any: the likely culprit, not a proof. It measures the real loop
with real time, so it takes no Clock: a fake clock cannot see a blocked loop.

A stall shows up when it overlaps a wake-up. While the loop has work (``poke()`` says a handler
ran), the monitor wakes every ``interval``, so a stall longer than ``interval + threshold`` is
always reported. When nothing pokes it, each quiet sample doubles the wait, up to
``idle_interval``: an idle daemon is not woken four times a second for nothing (bench/idle.py
measures it). A poke during a long wait wakes it at once and brings the wait back to ``interval``.
"""

import asyncio
import time
from collections.abc import Callable

import structlog

from common.message_bus import Subscription

log = structlog.get_logger("intentd.loop")


class LoopLagMonitor:
    """Sleep and measure how late the wake-up is; report every one later than ``threshold``."""

    def __init__(
        self,
        interval: float = 0.25,
        threshold: float = 0.1,
        *,
        idle_interval: float = 30.0,
        last_called: Callable[[], tuple[Subscription, float] | None] = lambda: None,
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.interval = interval
        self.idle_interval = max(interval, idle_interval)
        self.threshold = threshold
        self._last_called = last_called
        self._now = now
        self.current = 0.0
        self.max = 0.0
        self.reported = 0
        self.delay = interval  # the wait before the next sample
        self.poked = False  # poke() was called since the last sample began
        self._wake: asyncio.Future[bool] | None = None
        self._sample: asyncio.Future[float] | None = None

    def poke(self) -> None:
        """Say the loop has work: sample every ``interval`` again, from now."""
        self.poked = True
        wake = self._wake
        if wake is not None and self.delay > self.interval and not wake.done():
            wake.set_result(False)

    async def run(self) -> None:
        """Measure until cancelled; the supervisor owns this task."""
        loop = asyncio.get_running_loop()
        while True:
            self.poked = False
            delay = self.delay
            started = self._now()
            self._wake = wake = loop.create_future()
            timer = loop.call_later(delay, _wake_up, wake)
            try:
                on_time = await wake
            finally:
                timer.cancel()
                self._wake = None
            if not on_time:  # poked during a long wait: the loop has work again
                self.delay = self.interval
                continue
            called = self._last_called()
            suspect = called[0] if called is not None and called[1] >= started else None
            self.observe(self._now() - started - delay, suspect)
            self.delay = self.interval if self.poked else min(delay * 2, self.idle_interval)

    def observe(self, lag: float, suspect: Subscription | None = None) -> None:
        """Record one lateness measurement and report it when it is over the threshold."""
        lag = max(0.0, lag)
        self.current = lag
        self.max = max(self.max, lag)
        if lag > self.threshold:
            self.reported += 1
            log.warning(
                "loop_lagged",
                lag_ms=round(lag * 1000, 1),
                threshold_ms=round(self.threshold * 1000, 1),
                suspect_role=suspect.role if suspect else None,
                suspect_handler=suspect.name if suspect else None,
            )
        sample, self._sample = self._sample, None
        if sample is not None and not sample.done():
            sample.set_result(lag)

    async def next_sample(self) -> float:
        """Return the next lateness measurement."""
        if self._sample is None:
            self._sample = asyncio.get_running_loop().create_future()
        return await self._sample


def _wake_up(wake: "asyncio.Future[bool]") -> None:
    if not wake.done():
        wake.set_result(True)
