"""Loop-lag monitor: how late a short sleep wakes up is how long something blocked the loop.

It catches blocking the bus cannot time itself (an async handler that blocks between awaits, a
slow intent handler, a sync call in a channel). The report names the last bus handler called
during the stalled interval, if any: the likely culprit, not a proof. It measures the real loop
with real time, so it takes no Clock: a fake clock cannot see a blocked loop.

A stall shows up when it overlaps a wake-up, so one longer than ``interval + threshold`` is always
reported. Each wake-up costs CPU even when idle (bench/loop_lag.py measures it), which is why the
interval is not shorter.
"""

import asyncio
import time
from collections.abc import Callable

import structlog

from common.message_bus import Subscription

log = structlog.get_logger("intentd.loop")


class LoopLagMonitor:
    """Sleep ``interval`` seconds over and over; report every wake-up later than ``threshold``."""

    def __init__(
        self,
        interval: float = 0.25,
        threshold: float = 0.1,
        *,
        last_called: Callable[[], tuple[Subscription, float] | None] = lambda: None,
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.interval = interval
        self.threshold = threshold
        self._last_called = last_called
        self._now = now
        self.current = 0.0
        self.max = 0.0
        self.reported = 0
        self._sample: asyncio.Future[float] | None = None

    async def run(self) -> None:
        """Measure until cancelled; the supervisor owns this task."""
        while True:
            started = self._now()
            await asyncio.sleep(self.interval)
            called = self._last_called()
            suspect = called[0] if called is not None and called[1] >= started else None
            self.observe(self._now() - started - self.interval, suspect)

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
