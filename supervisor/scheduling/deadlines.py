"""Many deadlines behind one clock handle: where the timer service keeps its armed timers.

Rules kept here:
- Each key has at most one deadline; arming it again replaces the old one (the old heap entry is
  stale from then on, dropped when it reaches the top or when stale entries outnumber live ones).
- One ``clock.call_at`` handle waits until ``lead`` seconds before the earliest deadline. When it
  fires, every deadline up to ``lead`` after the earliest (``horizon``) is taken out and handed to
  ``on_due`` in deadline order, so the caller can get ready before each one is due.
- A wake-up that finds nothing due (the clock went back) only points the handle again.
"""

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping

from common.clock import Cancellable, Clock


class Deadlines:
    """Keys with deadlines (epoch seconds), one heap and one handle for them all."""

    def __init__(
        self, clock: Clock, on_due: Callable[[dict[str, float]], None], *, lead: float
    ) -> None:
        self.clock = clock
        self.on_due = on_due
        self.lead = lead
        self._armed: dict[str, float] = {}  # each key and its deadline
        self._heap: list[tuple[float, str]] = []  # (deadline, key); stale if armed disagrees
        self._handle: Cancellable | None = None
        self.earliest: float | None = None  # the deadline the handle serves

    def __len__(self) -> int:
        return len(self._armed)

    def __contains__(self, key: str) -> bool:
        return key in self._armed

    def __iter__(self) -> Iterator[str]:
        return iter(self._armed)

    def get(self, key: str) -> float | None:
        """Return the deadline of ``key``, or None when it is not armed."""
        return self._armed.get(key)

    def horizon(self, now: float) -> float:
        """The latest deadline a wake-up at ``now`` takes: ``lead`` after the earliest."""
        return now + 2 * self.lead

    def next_wake(self) -> float | None:
        """When the handle fires, or None when nothing is armed."""
        return None if self.earliest is None else self.earliest - self.lead

    def arm(self, key: str, when: float) -> None:
        """Give ``key`` the deadline ``when`` (replacing any it had)."""
        old = self._armed.get(key)
        self._armed[key] = when
        heapq.heappush(self._heap, (when, key))
        if self.earliest is None or when < self.earliest:
            self._point(when)
        elif old == self.earliest:  # the handle served its old deadline
            self.settle()

    def arm_all(self, deadlines: Mapping[str, float]) -> None:
        """Arm many keys at once (a start)."""
        self._armed.update(deadlines)
        self._heap.extend((when, key) for key, when in deadlines.items())
        heapq.heapify(self._heap)
        self.settle()

    def disarm(self, keys: Iterable[str]) -> None:
        """Forget the deadlines of ``keys`` (unknown keys are ignored)."""
        for key in keys:
            self._armed.pop(key, None)
        self.settle()

    def clear(self) -> None:
        """Forget every deadline and cancel the handle."""
        self._armed.clear()
        self._heap.clear()
        self.settle()

    def settle(self) -> None:
        """Drop stale entries from the heap's top and point the handle at the earliest left."""
        heap, armed = self._heap, self._armed
        while heap and armed.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if len(heap) > 2 * len(armed) + 64:  # mostly disarmed or re-armed entries: compact
            heap[:] = [(when, key) for when, key in heap if armed.get(key) == when]
            heapq.heapify(heap)
        earliest = heap[0][0] if heap else None
        if earliest != self.earliest:
            self._point(earliest)

    def _point(self, when: float | None) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.earliest = when
        self._handle = None if when is None else self.clock.call_at(when - self.lead, self._woken)

    def _woken(self) -> None:
        self._handle = self.earliest = None
        horizon = self.horizon(self.clock.time())
        heap, armed = self._heap, self._armed
        due: dict[str, float] = {}
        while heap and heap[0][0] <= horizon:
            when, key = heapq.heappop(heap)
            if armed.get(key) == when:
                del armed[key]
                due[key] = when
        self.settle()
        self.on_due(due)
