"""The TimerBackend on PostgreSQL: claims are one conditional UPDATE, so a firing happens once.

Two instances whose handles fire at the same instant both run the claim; PostgreSQL's row lock
makes the second re-check the condition after the first commits, and it finds the lease taken.
``add`` sends ``intentd_timers`` with "timer_id due_at" so every instance arms the new timer.
"""

import json
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from supervisor.store.base import Advanced, Timer
from supervisor.store.postgres.listener import Listener

CHANNEL = "intentd_timers"
COLUMNS = (
    "timer_id, label, due_at, created_at, channel_id, user_id, role, original_request, "
    "data::text AS data, state, attempts, fired_at, cancelled_at"
)


def _timer(row: Any) -> Timer:
    return Timer(**{**dict(row), "data": json.loads(row["data"])})


class PostgresTimers:
    """Timers in the shared database."""

    def __init__(self, pool: asyncpg.Pool, listener: Listener) -> None:
        self.pool = pool
        self._added: list[Callable[[str, float], None]] = []
        self._resync: list[Callable[[], None]] = []
        listener.on(CHANNEL, self._notified)
        listener.on_resync(self._listening_again)

    async def add(self, timer: Timer) -> None:
        """Store a new pending timer and tell every instance, in one statement (one round trip;
        the notification is sent when that statement's transaction commits)."""
        await self.pool.execute(
            "WITH added AS (INSERT INTO timers (timer_id, label, due_at, created_at, channel_id, "
            "user_id, role, original_request, data) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING timer_id) "
            "SELECT pg_notify($10, $11) FROM added",
            timer.timer_id,
            timer.label,
            timer.due_at,
            timer.created_at,
            timer.channel_id,
            timer.user_id,
            timer.role,
            timer.original_request,
            json.dumps(timer.data, default=str) if timer.data else "{}",
            CHANNEL,
            f"{timer.timer_id} {timer.due_at!r}",
        )

    async def get(self, timer_id: str) -> Timer | None:
        """Return the timer with ``timer_id``, or None."""
        row = await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM timers WHERE timer_id = $1", timer_id
        )
        return _timer(row) if row is not None else None

    async def query(
        self,
        *,
        include_done: bool = False,
        channel_id: str | None = None,
        user_id: str | None = None,
    ) -> list[Timer]:
        """Return pending timers by deadline (all with ``include_done``), optionally filtered."""
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM timers WHERE ($1 OR state = 'pending') "
            "AND ($2::text IS NULL OR channel_id = $2) AND ($3::text IS NULL OR user_id = $3) "
            "ORDER BY due_at, timer_id",
            include_done,
            channel_id,
            user_id,
        )
        return [_timer(row) for row in rows]

    async def pending(self) -> dict[str, float]:
        """Return each pending timer's id and when it may fire."""
        rows = await self.pool.fetch(
            "SELECT timer_id, greatest(due_at, lease_until) AS at FROM timers "
            "WHERE state = 'pending'"
        )
        return {row["timer_id"]: row["at"] for row in rows}

    async def cancel(self, timer_id: str, now: float) -> bool:
        """Cancel a pending timer no instance is firing now."""
        status = await self.pool.execute(
            "UPDATE timers SET state = 'cancelled', cancelled_at = $2 WHERE timer_id = $1 "
            "AND state = 'pending' AND (claimed_by IS NULL OR lease_until <= $2)",
            timer_id,
            now,
        )
        return bool(status == "UPDATE 1")

    async def advance(
        self,
        fired: Sequence[tuple[str, float]],
        due: Sequence[str],
        instance: str,
        due_by: float,
        lease_until: float,
    ) -> Advanced:
        """Mark fired what ``instance`` holds of ``fired``, then claim each of ``due`` that is
        pending and due and unclaimed by ``due_by``; one statement each, in one transaction when
        both are given."""
        if fired and due:
            async with self.pool.acquire() as conn, conn.transaction():
                marked = await self._mark_fired(conn, fired, instance)
                claimed, waiting = await self._claim(conn, due, instance, due_by, lease_until)
        elif fired:
            marked, claimed, waiting = await self._mark_fired(self.pool, fired, instance), [], {}
        else:
            marked = 0
            claimed, waiting = await self._claim(self.pool, due, instance, due_by, lease_until)
        return Advanced(marked, claimed, waiting)

    async def _claim(
        self, db: Any, due: Sequence[str], instance: str, due_by: float, lease_until: float
    ) -> tuple[list[Timer], dict[str, float]]:
        if not due:
            return [], {}
        rows = await db.fetch(
            "UPDATE timers SET attempts = attempts + 1, claimed_by = $2, lease_until = $4 "
            "WHERE timer_id = ANY($1::text[]) AND state = 'pending' AND due_at <= $3 "
            f"AND coalesce(lease_until, 0) <= $3 RETURNING {COLUMNS}",
            list(due),
            instance,
            due_by,
            lease_until,
        )
        waiting: dict[str, float] = {}
        if len(rows) < len(due):
            taken = {row["timer_id"] for row in rows}
            rest = [timer_id for timer_id in due if timer_id not in taken]
            left = await db.fetch(
                "SELECT timer_id, greatest(due_at, lease_until) AS at FROM timers "
                "WHERE timer_id = ANY($1::text[]) AND state = 'pending'",
                rest,
            )
            waiting = {row["timer_id"]: row["at"] for row in left}
        return [_timer(row) for row in rows], waiting

    async def _mark_fired(self, db: Any, fired: Sequence[tuple[str, float]], instance: str) -> int:
        status = await db.execute(
            "UPDATE timers SET state = 'fired', fired_at = f.fired_at, claimed_by = NULL, "
            "lease_until = NULL FROM unnest($1::text[], $2::float8[]) AS f(timer_id, fired_at) "
            "WHERE timers.timer_id = f.timer_id AND timers.state = 'pending' "
            "AND timers.claimed_by = $3",
            [timer_id for timer_id, _ in fired],
            [fired_at for _, fired_at in fired],
            instance,
        )
        return int(status.rpartition(" ")[2])

    async def renew(self, timer_ids: Sequence[str], instance: str, lease_until: float) -> None:
        """Extend the leases ``instance`` holds on ``timer_ids``."""
        await self.pool.execute(
            "UPDATE timers SET lease_until = $3 WHERE timer_id = ANY($1::text[]) "
            "AND claimed_by = $2 AND state = 'pending'",
            list(timer_ids),
            instance,
            lease_until,
        )

    async def release(self, timer_id: str, instance: str, not_before: float) -> None:
        """Give up ``instance``'s claim until ``not_before``."""
        await self.pool.execute(
            "UPDATE timers SET claimed_by = NULL, lease_until = $3 "
            "WHERE timer_id = $1 AND claimed_by = $2 AND state = 'pending'",
            timer_id,
            instance,
            not_before,
        )

    async def recover(self) -> None:
        """Keep every claim: it belongs to a live instance, or its lease ends on its own."""

    def watch(self, added: Callable[[str, float], None], resync: Callable[[], None]) -> None:
        """Call ``added(timer_id, due_at)`` for each timer any instance adds, and ``resync()``
        when notifications may have been missed (the listening connection was re-opened)."""
        self._added.append(added)
        self._resync.append(resync)

    def _notified(self, payload: str) -> None:
        timer_id, _, due_at = payload.partition(" ")
        for added in self._added:
            added(timer_id, float(due_at))

    def _listening_again(self) -> None:
        for resync in self._resync:
            resync()
