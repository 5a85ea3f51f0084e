"""The timer service: durable deadlines that fire from the loop's scheduler, never from polling.

Rules kept here:
- A timer is stored (an absolute UTC deadline) before ``create`` returns its id.
- Each pending timer has one ``clock.call_at`` handle. When it fires, the service counts the
  attempt on disk and publishes ``TIMER_EXPIRED``; the timer is marked fired only once the bus
  reports that at least one handler ran and every intent produced for that event was carried out.
  A crash in between leaves it pending, so the next start fires it again with the next attempt
  number; its intents keep the same ids (``idempotency_key``), so the outbox and the audit log
  keep one copy.
- A delivery that failed (no handler, a handler error, a failed intent) is logged and retried,
  the delay doubling from ``timers.retry_initial`` to ``timers.retry_max``; after
  ``timers.alert_after_attempts`` attempts ``TIMER_DELIVERY_FAILING`` tells the admin channel,
  once, and the retries go on. A timer is never dropped.
- Timers fire by the wall clock: a handle that fires before ``due_at`` (the clock was set back)
  is re-armed, and ``reconcile`` fires armed timers more than ``late_tolerance`` past ``due_at``
  (the machine was suspended).
- At start every pending timer is re-armed; one that fell due while the daemon was down fires
  once, at once, with its real ``late_by_s``.
- ``reconcile`` compares the armed handles with the store: a safety net, not the firing path.
"""

import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import partial
from typing import Any

import structlog

from common.backoff import backoff_delay
from common.clock import Cancellable, Clock, utc_iso
from common.errors import BusClosedError, BusFullError, StoreError, TimerError
from common.events import TIMER_DELIVERY_FAILING, TIMER_EXPIRED
from common.ids import new_id
from common.message_bus import EventOutcome, MessageBus
from common.role_api import MAX_TIMER_SECONDS
from common.states import Transitions
from supervisor.config import TimersConfig
from supervisor.scheduling.bus_retry import RETRY_DELAY, try_publish
from supervisor.store.sqlite import Store

log = structlog.get_logger("intentd.timers")


def _no_jitter() -> float:  # timer retries wait the full doubled delay
    return 1.0


MIGRATIONS = [
    """
    CREATE TABLE timers (
        timer_id TEXT PRIMARY KEY,
        label TEXT NOT NULL DEFAULT '',
        due_at REAL NOT NULL,
        created_at REAL NOT NULL,
        channel_id TEXT,
        user_id TEXT,
        role TEXT,
        original_request TEXT,
        data TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        fired_at REAL,
        cancelled_at REAL
    );
    CREATE INDEX timers_pending ON timers (state, due_at);
    """,
]


class TimerState(StrEnum):
    """A stored timer's states (the values the ``timers.state`` column holds)."""

    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


TIMER_STATES = Transitions(
    "timer",
    {
        TimerState.PENDING: frozenset({TimerState.FIRED, TimerState.CANCELLED}),
        TimerState.FIRED: frozenset(),
        TimerState.CANCELLED: frozenset(),
    },
)

_COLUMNS = (
    "timer_id, label, due_at, created_at, channel_id, user_id, role, original_request, data, "
    "state, attempts, fired_at, cancelled_at"
)


@dataclass(frozen=True)
class Timer:
    """One stored timer; times are UTC epoch seconds."""

    timer_id: str
    label: str
    due_at: float
    created_at: float
    channel_id: str | None
    user_id: str | None
    role: str | None
    original_request: str | None
    data: dict[str, Any]
    state: str
    attempts: int
    fired_at: float | None
    cancelled_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Timer":
        """Build a Timer from a ``timers`` row."""
        return cls(**{**dict(row), "data": json.loads(row["data"])})

    def to_dict(self) -> dict[str, Any]:
        """Return the timer as JSON-ready data, with ISO times next to the epoch ones."""
        out = asdict(self)
        out["due"] = utc_iso(self.due_at)
        out["fired"] = utc_iso(self.fired_at) if self.fired_at is not None else None
        return out


def migrate(store: Store) -> None:
    """Create or upgrade the timer tables."""
    store.migrate("timers", MIGRATIONS)


def query_timers(
    db: sqlite3.Connection,
    *,
    include_done: bool = False,
    channel_id: str | None = None,
    user_id: str | None = None,
) -> list[Timer]:
    """Return pending timers by deadline (all with ``include_done``), optionally filtered."""
    where, params = [], []
    if not include_done:
        where.append("state = 'pending'")
    if channel_id is not None:
        where.append("channel_id = ?")
        params.append(channel_id)
    if user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    sql = f"SELECT {_COLUMNS} FROM timers"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.execute(sql + " ORDER BY due_at, timer_id", params).fetchall()
    return [Timer.from_row(row) for row in rows]


class TimerService:
    """Create, cancel, list and fire durable timers on the daemon's loop."""

    max_duration = MAX_TIMER_SECONDS
    late_tolerance = 1.0  # seconds past due_at before reconcile fires an armed timer itself

    def __init__(
        self,
        store: Store,
        bus: MessageBus,
        clock: Clock,
        config: TimersConfig | None = None,
        *,
        on_fired: Callable[[float], None] | None = None,
        arms: bool = True,
    ) -> None:
        """``arms=False`` only stores timers, for a process that does not run them (the CLI)."""
        self.store = store
        self.bus = bus
        self.clock = clock
        self.on_fired = on_fired  # called with each published expiry's lateness in seconds
        self.config = config or TimersConfig()
        self._armed: dict[str, Cancellable] = {}
        self._retry_at: dict[str, float] = {}  # timers armed for a time after their due_at
        self._in_flight: set[str] = set()
        self._stopped = False
        self.arms = arms
        migrate(store)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> int:
        """Arm every pending timer; return how many."""
        self._stopped = False
        rows = self.store.db.execute("SELECT timer_id, due_at FROM timers WHERE state = 'pending'")
        for timer_id, due_at in rows:  # streamed, not fetched at once: 100,000 rows stay cheap
            self._arm(timer_id, due_at)
        log.info("timers_armed", count=len(self._armed))
        return len(self._armed)

    def stop(self) -> None:
        """Disarm every timer (they stay pending on disk)."""
        self._stopped = True
        for handle in self._armed.values():
            handle.cancel()
        self._armed.clear()
        self._retry_at.clear()

    # -- the service roles use --------------------------------------------------------------

    def create(
        self,
        *,
        deadline: float | None = None,
        duration: float | None = None,
        label: str = "",
        channel_id: str | None = None,
        user_id: str | None = None,
        data: dict[str, Any] | None = None,
        original_request: str | None = None,
        role: str | None = None,
    ) -> str:
        """Store a timer due at ``deadline`` or after ``duration`` seconds; return its id."""
        now = self.clock.time()
        if (deadline is None) == (duration is None):
            raise TimerError(
                f"timer {label!r}: give exactly one of deadline or duration, got "
                f"deadline={deadline!r} and duration={duration!r}"
            )
        due_at = deadline if deadline is not None else now + duration  # type: ignore[operator]
        if not now < due_at <= now + self.max_duration:
            raise TimerError(
                f"timer {label!r} would be due at {utc_iso(due_at)}; a timer must be due after now "
                f"({utc_iso(now)}) and within {int(self.max_duration // 86400)} days"
            )
        timer_id = new_id("tmr")
        try:
            with self.store.transaction() as db:
                db.execute(
                    "INSERT INTO timers (timer_id, label, due_at, created_at, channel_id, user_id, "
                    "role, original_request, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        timer_id,
                        label,
                        due_at,
                        now,
                        channel_id,
                        user_id,
                        role,
                        original_request,
                        json.dumps(data or {}, default=str),
                    ),
                )
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"store.path {str(self.store.path)!r}: cannot save timer {label!r} ({err})"
            ) from err
        self._arm(timer_id, due_at)
        log.info("timer_created", timer_id=timer_id, label=label, due_at=utc_iso(due_at))
        return timer_id

    def cancel(self, timer_id: str) -> Timer:
        """Cancel a pending timer and return it; an unknown, fired or cancelled one is an error."""
        timer = self.get(timer_id)
        if timer is None:
            raise TimerError(
                f"no timer has id {timer_id!r}; list the pending ones with list_timers"
            )
        if not TIMER_STATES.allows(timer.state, TimerState.CANCELLED) or (
            timer_id in self._in_flight
        ):
            raise TimerError(
                f"timer {timer_id!r} ({timer.label!r}) cannot be cancelled: it has already "
                f"{'fired' if timer.state != TimerState.CANCELLED else 'been cancelled'}"
            )
        now = self.clock.time()
        with self.store.transaction() as db:
            db.execute(
                "UPDATE timers SET state = ?, cancelled_at = ? WHERE timer_id = ?",
                (TimerState.CANCELLED, now, timer_id),
            )
        self._retry_at.pop(timer_id, None)
        handle = self._armed.pop(timer_id, None)
        if handle is not None:
            handle.cancel()
        log.info("timer_cancelled", timer_id=timer_id)
        return self.get(timer_id)  # type: ignore[return-value]

    def get(self, timer_id: str) -> Timer | None:
        """Return the timer with ``timer_id``, or None."""
        row = self.store.db.execute(
            f"SELECT {_COLUMNS} FROM timers WHERE timer_id = ?", (timer_id,)
        ).fetchone()
        return Timer.from_row(row) if row is not None else None

    def list(
        self,
        *,
        include_done: bool = False,
        channel_id: str | None = None,
        user_id: str | None = None,
    ) -> list[Timer]:
        """Return pending timers by deadline (all with ``include_done``), optionally filtered."""
        return query_timers(
            self.store.db, include_done=include_done, channel_id=channel_id, user_id=user_id
        )

    def pending_count(self) -> int:
        """Return how many timers are pending on disk."""
        (count,) = self.store.db.execute(
            "SELECT count(*) FROM timers WHERE state = 'pending'"
        ).fetchone()
        return int(count)

    def reconcile(self) -> dict[str, int]:
        """Fire armed timers overdue by the wall clock, arm lost ones, drop stale handles."""
        pending = self.pending_count()
        if not self.arms:  # the daemon that runs the timers arms them
            return {"pending": pending, "rearmed": 0, "dropped": 0, "overdue": 0}
        overdue = self._fire_overdue()
        if pending == len(self._armed) + len(self._in_flight):
            return {"pending": pending, "rearmed": 0, "dropped": 0, "overdue": overdue}
        rows = dict(
            self.store.db.execute(
                "SELECT timer_id, due_at FROM timers WHERE state = 'pending'"
            ).fetchall()
        )
        missing = [tid for tid in rows if tid not in self._armed and tid not in self._in_flight]
        stale = [tid for tid in self._armed if tid not in rows]
        for timer_id in missing:
            self._arm(timer_id, rows[timer_id])
        for timer_id in stale:
            self._retry_at.pop(timer_id, None)
            self._armed.pop(timer_id).cancel()
        log.warning("timers_reconciled", rearmed=len(missing), dropped=len(stale))
        return {
            "pending": pending,
            "rearmed": len(missing),
            "dropped": len(stale),
            "overdue": overdue,
        }

    def _fire_overdue(self) -> int:
        """Fire armed timers whose handle should have fired by the wall clock; return how many."""
        late = self.clock.time() - self.late_tolerance
        rows = self.store.db.execute(
            "SELECT timer_id FROM timers WHERE state = 'pending' AND due_at <= ?", (late,)
        ).fetchall()
        overdue = [
            tid for (tid,) in rows if tid in self._armed and self._retry_at.get(tid, late) <= late
        ]
        for timer_id in overdue:
            self._armed.pop(timer_id).cancel()
            self._fire(timer_id)
        if overdue:
            log.warning("timers_overdue_fired", count=len(overdue))
        return len(overdue)

    # -- firing -----------------------------------------------------------------------------

    def _arm(self, timer_id: str, when: float) -> None:
        if self.arms:
            self._armed[timer_id] = self.clock.call_at(when, partial(self._fire, timer_id))

    def _retry(self, timer_id: str, when: float) -> None:
        self._retry_at[timer_id] = when
        self._arm(timer_id, when)

    def _fire(self, timer_id: str) -> None:
        self._armed.pop(timer_id, None)
        self._retry_at.pop(timer_id, None)
        timer = self.get(timer_id)
        if timer is None or timer.state != "pending":
            return
        fired_at = self.clock.time()
        if fired_at < timer.due_at:  # the wall clock was set back since the timer was armed
            log.info("timer_not_due_yet", timer_id=timer_id, early_by_s=timer.due_at - fired_at)
            self._arm(timer_id, timer.due_at)
            return
        attempt = timer.attempts + 1
        late_by = max(0.0, fired_at - timer.due_at)
        data = {
            "timer_id": timer_id,
            "label": timer.label,
            "original_request": timer.original_request,
            "channel_id": timer.channel_id,
            "user_id": timer.user_id,
            "due_at": timer.due_at,
            "fired_at": fired_at,
            "late_by_s": late_by,
            "attempt": attempt,
            "data": timer.data,
        }
        publish = partial(
            self.bus.publish,
            "timers",
            TIMER_EXPIRED,
            data,
            source="timers",
            attempt=attempt,
            idempotency_key=f"timer:{timer_id}",
            on_done=partial(self._delivered, timer, fired_at, attempt),
        )
        try:
            if not try_publish(publish, timer_id=timer_id):
                self._retry(timer_id, fired_at + RETRY_DELAY)
                return
        except BusClosedError:
            return  # the daemon is stopping; the timer stays pending for the next start
        self._in_flight.add(timer_id)
        if self.on_fired is not None:
            self.on_fired(late_by)
        # Counted on disk before any handler runs, so a re-fire after a crash says attempt 2.
        with self.store.transaction() as db:
            db.execute("UPDATE timers SET attempts = ? WHERE timer_id = ?", (attempt, timer_id))

    def _delivered(
        self, timer: Timer, fired_at: float, attempt: int, outcome: EventOutcome
    ) -> None:
        self._in_flight.discard(timer.timer_id)
        if outcome.ok:
            state = TIMER_STATES.check(timer.timer_id, timer.state, TimerState.FIRED)
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE timers SET state = ?, fired_at = ? WHERE timer_id = ? AND state = ?",
                    (state, fired_at, timer.timer_id, timer.state),
                )
            return
        retry_in = backoff_delay(
            attempt, self.config.retry_initial, self.config.retry_max, random=_no_jitter
        )
        log.warning(
            "timer_delivery_failed",
            timer_id=timer.timer_id,
            label=timer.label,
            attempt=attempt,
            handlers=outcome.handlers,
            failures=outcome.failures,
            retry_in_s=retry_in,
        )
        if attempt == self.config.alert_after_attempts:
            self._alert(timer, attempt)
        if not self._stopped:
            self._retry(timer.timer_id, self.clock.time() + retry_in)

    def _alert(self, timer: Timer, attempts: int) -> None:
        data = {
            "timer_id": timer.timer_id,
            "label": timer.label,
            "due": utc_iso(timer.due_at),
            "attempts": attempts,
        }
        try:
            self.bus.publish("timers", TIMER_DELIVERY_FAILING, data, source="timers")
        except (BusClosedError, BusFullError) as err:
            log.error("timer_alert_not_sent", timer_id=timer.timer_id, error=str(err))
