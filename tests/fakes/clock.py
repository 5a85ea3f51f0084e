"""A clock the test moves by hand: ``await clock.advance(30)`` instead of sleeping."""

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z: a fixed, readable instant


@dataclass(order=True)
class FakeHandle:
    """A callback waiting in the fake clock; ``cancel()`` removes it."""

    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        """Stop the callback from running."""
        self.cancelled = True


class FakeClock:
    """A Clock whose time only moves when the test calls ``advance``."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self._heap: list[FakeHandle] = []
        self._seq = itertools.count()

    def time(self) -> float:
        """Return the fake current time."""
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeHandle:
        """Schedule ``callback`` for fake time ``when``."""
        handle = FakeHandle(when, next(self._seq), callback)
        heapq.heappush(self._heap, handle)
        return handle

    async def sleep_until(self, when: float) -> None:
        """Wait until the test has advanced the clock to ``when``."""
        if when <= self.now:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        handle = self.call_at(when, lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            handle.cancel()

    @property
    def pending(self) -> int:
        """Return how many callbacks wait in the clock."""
        return sum(1 for handle in self._heap if not handle.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time forward, running every callback due on the way, in deadline order."""
        target = self.now + seconds
        await settle()
        while self._heap and self._heap[0].when <= target:
            handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            self.now = max(self.now, handle.when)
            handle.callback()
            await settle()
        self.now = target
        await settle()


async def settle(rounds: int = 50) -> None:
    """Let every ready task run until it waits on something (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class SteppingClock(FakeClock):
    """A FakeClock whose wall time can step away from its scheduler, as a clock change does.

    Callbacks are scheduled on the scheduler's (monotonic) time, like the loop's ``call_at``;
    ``step`` moves only the wall clock, as setting the system time or a suspend does.
    """

    def __init__(self, start: float = START) -> None:
        super().__init__(start)
        self.offset = 0.0

    def time(self) -> float:
        """Return the wall time: the scheduler's time plus every step so far."""
        return self.now + self.offset

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeHandle:
        """Schedule ``callback`` for wall time ``when`` as the wall clock reads now."""
        return super().call_at(when - self.offset, callback)

    def step(self, seconds: float) -> None:
        """Move the wall clock by ``seconds`` without running anything."""
        self.offset += seconds
