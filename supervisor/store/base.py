"""The store's parts as async interfaces; SQLite (one process) and PostgreSQL (a cluster) each
implement every one, and one contract suite (tests/supervisor/store/test_contract.py) runs on both.

Rules every implementation keeps:
- A method returns only once its change is committed.
- Values cross the interface as plain data: JSON text for kv values, ``AuditRecord`` for audit.
- Claims (timers, schedule runs, outbox lanes) carry the claiming instance's name and a lease
  end (epoch seconds); a claim whose lease has ended may be taken by another instance.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, Protocol

from common.audit import AuditRecord
from common.clock import utc_iso


class KVBackend(Protocol):
    """Role key-value data: JSON text under (role, key)."""

    async def get(self, role: str, key: str) -> str | None:
        """Return the JSON text stored under ``key`` for ``role``, or None."""
        ...

    async def set(self, role: str, key: str, value: str) -> None:
        """Store the JSON text ``value`` under ``key`` for ``role``."""
        ...

    async def delete(self, role: str, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        ...

    async def keys(self, role: str) -> list[str]:
        """Return ``role``'s keys, sorted."""
        ...


class AuditBackend(Protocol):
    """The append-only audit log; a record whose intent id is already there is ignored."""

    async def append_many(self, records: Sequence[AuditRecord]) -> None:
        """Commit ``records`` in one transaction."""
        ...

    async def tail(self, n: int, action: str | None = None) -> list[AuditRecord]:
        """Return the last ``n`` records (of ``action`` only, if given), oldest first."""
        ...


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

    def to_dict(self) -> dict[str, Any]:
        """Return the timer as JSON-ready data, with ISO times next to the epoch ones."""
        out = asdict(self)
        out["due"] = utc_iso(self.due_at)
        out["fired"] = utc_iso(self.fired_at) if self.fired_at is not None else None
        return out


class Advanced(NamedTuple):
    """What one step of the timer service did: how many fired marks it recorded (a lost claim is
    skipped), the timers it claimed (attempt counted), and for each other named timer still
    pending, when it may be claimed (its deadline, or the end of another's lease)."""

    marked: int
    timers: list[Timer]
    waiting: dict[str, float]


class TimerBackend(Protocol):
    """Durable timers. A firing is claimed (``attempts`` + 1, a lease) so it happens once
    cluster-wide; a claim whose lease ended, or that was released, can be claimed again."""

    async def add(self, timer: Timer) -> None:
        """Store a new pending timer (and tell other instances about it)."""
        ...

    async def get(self, timer_id: str) -> Timer | None:
        """Return the timer with ``timer_id``, or None."""
        ...

    async def query(
        self,
        *,
        include_done: bool = False,
        channel_id: str | None = None,
        user_id: str | None = None,
    ) -> list[Timer]:
        """Return pending timers by deadline (all with ``include_done``), optionally filtered."""
        ...

    async def pending(self) -> dict[str, float]:
        """Return each pending timer's id and when it may fire: its deadline or its lease end."""
        ...

    async def cancel(self, timer_id: str, now: float) -> bool:
        """Cancel a pending timer no instance is firing now; return whether it was cancelled."""
        ...

    async def advance(
        self,
        fired: Sequence[tuple[str, float]],
        due: Sequence[str],
        instance: str,
        due_by: float,
        lease_until: float,
    ) -> Advanced:
        """In one transaction: mark fired each ``(timer_id, fired_at)`` that ``instance`` still
        holds, then claim for ``instance`` each of ``due`` that is pending, due by ``due_by`` and
        unclaimed by then (its lease ended or released until no later); a timer that is not
        pending is left out of both halves of the claim's answer."""
        ...

    async def renew(self, timer_ids: Sequence[str], instance: str, lease_until: float) -> None:
        """Extend the leases ``instance`` holds on ``timer_ids``."""
        ...

    async def release(self, timer_id: str, instance: str, not_before: float) -> None:
        """Give up ``instance``'s claim; nobody claims the timer again before ``not_before``."""
        ...

    async def recover(self) -> None:
        """Called at start by the instance that fires timers: drop claims no live instance can
        hold (SQLite has one process, so every claim found is a dead run's)."""
        ...

    def watch(self, added: Callable[[str, float], None], resync: Callable[[], None]) -> None:
        """Call ``added(timer_id, due_at)`` for each timer another instance adds, and
        ``resync()`` when such news may have been missed."""
        ...


@dataclass(frozen=True)
class OutboxEntry:
    """One stored notification."""

    id: int
    key: str
    kind: str
    target: str
    lane: str
    text: str
    priority: str
    user_id: str | None
    parent_id: str | None
    alert: bool
    state: str
    attempts: int
    parts_sent: int
    unsure: bool
    next_attempt_at: float
    created_at: float
    finished_at: float | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "OutboxEntry":
        """Build an entry from an ``outbox`` row."""
        data = dict(row)
        return cls(**{**data, "alert": bool(data["alert"]), "unsure": bool(data["unsure"])})

    @property
    def address(self) -> str:
        """Return the entry's channel address, ``kind:target``."""
        return f"{self.kind}:{self.target}"


@dataclass(frozen=True)
class NewNotification:
    """A notification to store; ``key`` (the intent id) makes a second enqueue of it a no-op."""

    key: str
    kind: str
    target: str
    lane: str
    text: str
    priority: str
    user_id: str | None
    parent_id: str | None
    alert: bool
    created_at: float


class OutboxBackend(Protocol):
    """Stored notifications, delivered lane by lane. A lane is delivered by one instance at a
    time: ``claim_lane`` takes it (or renews the caller's own claim) until ``lease_until``."""

    async def enqueue(self, note: NewNotification) -> tuple[int, bool]:
        """Store ``note`` unless its key is known; return its id and whether it was new."""
        ...

    async def get(self, entry_id: int) -> OutboxEntry | None:
        """Return the entry with ``entry_id``, or None."""
        ...

    async def head(self, lane: str) -> OutboxEntry | None:
        """Return the oldest pending entry of ``lane``, or None."""
        ...

    async def pending_lanes(self) -> list[str]:
        """Return the lanes that have pending entries."""
        ...

    async def count(self, state: str) -> int:
        """Return how many entries are in ``state``."""
        ...

    async def update(self, entry_id: int, values: Mapping[str, Any]) -> None:
        """Set the columns ``values`` names on entry ``entry_id``."""
        ...

    async def dead_letters(self) -> list[OutboxEntry]:
        """Return the dead letters, oldest first."""
        ...

    async def retry_dead(self, ids: Sequence[int] | None, now: float) -> list[int]:
        """Put dead letters (all, or ``ids``) back in line; return the ids re-queued."""
        ...

    async def claim_lane(self, lane: str, owner: str, now: float, lease_until: float) -> bool:
        """Take ``lane`` for ``owner`` (or extend its claim); False if another instance has it."""
        ...

    async def release_lane(self, lane: str, owner: str) -> None:
        """Give up ``owner``'s claim on ``lane``."""
        ...

    def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` when another instance stores a notification."""
        ...


class ScheduleBackend(Protocol):
    """Each schedule's timing: its spec and next run time (the runs themselves are journaled
    under a unique key, so a run happens once however many instances save the state)."""

    async def load(self) -> dict[str, tuple[str, float]]:
        """Return each saved schedule's spec and next run time, by name."""
        ...

    async def save(
        self, name: str, spec: str, next_run_at: float, last_run_at: float | None
    ) -> None:
        """Save a schedule's timing; a later ``next_run_at`` saved elsewhere is kept."""
        ...
