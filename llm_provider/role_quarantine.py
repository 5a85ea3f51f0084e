"""Quarantine: a role whose handlers keep failing is taken off the bus until its file changes.

Fed by the bus's failure hooks (raise, time-out, garbage result). ``limit`` failures of one role
within ``window`` seconds trip it; the failure history of a tripped role starts afresh.
"""

from collections import deque
from collections.abc import Callable

from common.message_bus import HandlerFailure

Quarantine = Callable[[str, int, float, str], object]  # (role, failures, window, last error)


class FailureWindow:
    """Count each role's handler failures over a sliding window and trip at ``limit``."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float], quarantine: Quarantine
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._quarantine = quarantine
        self._failures: dict[str, deque[float]] = {}

    def record(self, failure: HandlerFailure) -> None:
        """Note one failure; quarantine its role when it is the ``limit``-th within the window."""
        now = self._clock()
        times = self._failures.setdefault(failure.role, deque())
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            del self._failures[failure.role]
            self._quarantine(failure.role, self.limit, self.window, failure.error)
