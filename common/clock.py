"""Wall-clock time and deadlines, behind one small interface so tests can move time.

Deadlines are absolute UTC epoch seconds. The system clock turns them into the loop's own
``call_at`` (monotonic) so they fire from the scheduler, never from polling.
"""

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


def utc_iso(when: float | datetime) -> str:
    """Return epoch seconds or an aware datetime as ISO-8601 UTC text: 2027-01-15T08:00:00Z.

    The one format every time the HTTP API, the CLI and role replies show is written in.
    """
    moment = when if isinstance(when, datetime) else datetime.fromtimestamp(when, UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Cancellable(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the daemon needs from a clock."""

    def time(self) -> float:
        """Return the current UTC time as epoch seconds."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` on the loop at epoch second ``when`` (at once if it has passed)."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return at epoch second ``when``."""
        ...


class SystemClock:
    """The real clock: ``time.time()`` and the running loop's scheduler."""

    def time(self) -> float:
        """Return the current UTC time as epoch seconds."""
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run ``callback`` on the running loop at epoch second ``when``."""
        loop = asyncio.get_running_loop()
        return loop.call_at(loop.time() + max(0.0, when - time.time()), callback)

    async def sleep_until(self, when: float) -> None:
        """Return at epoch second ``when``."""
        delay = when - time.time()
        await asyncio.sleep(max(0.0, delay))
