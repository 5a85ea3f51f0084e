"""The OutboxBackend on PostgreSQL: ``outbox`` rows, and ``outbox_lanes`` claims so each
channel's lane is delivered by one process at a time, in order.

``enqueue`` sends ``intentd_outbox`` (payload: the lane), so an idle process owning no lane
still starts delivering at once when the lane's owner dies and its lease ends.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg

from supervisor.store.base import NewNotification, OutboxEntry
from supervisor.store.postgres.listener import Listener

CHANNEL = "intentd_outbox"


class PostgresOutbox:
    """Stored notifications in the shared database."""

    def __init__(self, pool: asyncpg.Pool, listener: Listener | None = None) -> None:
        self.pool = pool
        self._listener = listener

    def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` when any process stores a notification."""
        if self._listener is not None:
            self._listener.on(CHANNEL, lambda _lane: wake())
            self._listener.on_resync(wake)

    async def enqueue(self, note: NewNotification) -> tuple[int, bool]:
        """Store ``note`` unless its key is known; return its id and whether it was new."""
        async with self.pool.acquire() as conn, conn.transaction():
            entry_id = await conn.fetchval(
                "INSERT INTO outbox (key, kind, target, lane, text, priority, user_id, parent_id, "
                "alert, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                "$10, $10) ON CONFLICT (key) DO NOTHING RETURNING id",
                note.key,
                note.kind,
                note.target,
                note.lane,
                note.text,
                note.priority,
                note.user_id,
                note.parent_id,
                note.alert,
                note.created_at,
            )
            if entry_id is not None:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, note.lane)
                return int(entry_id), True
            known = await conn.fetchval("SELECT id FROM outbox WHERE key = $1", note.key)
        return int(known), False

    async def get(self, entry_id: int) -> OutboxEntry | None:
        """Return the entry with ``entry_id``, or None."""
        row = await self.pool.fetchrow("SELECT * FROM outbox WHERE id = $1", entry_id)
        return OutboxEntry.from_row(row) if row is not None else None

    async def head(self, lane: str) -> OutboxEntry | None:
        """Return the oldest pending entry of ``lane``, or None."""
        row = await self.pool.fetchrow(
            "SELECT * FROM outbox WHERE state = 'pending' AND lane = $1 ORDER BY id LIMIT 1", lane
        )
        return OutboxEntry.from_row(row) if row is not None else None

    async def pending_lanes(self) -> list[str]:
        """Return the lanes that have pending entries."""
        rows = await self.pool.fetch("SELECT DISTINCT lane FROM outbox WHERE state = 'pending'")
        return [row["lane"] for row in rows]

    async def count(self, state: str) -> int:
        """Return how many entries are in ``state``."""
        return int(await self.pool.fetchval("SELECT count(*) FROM outbox WHERE state = $1", state))

    async def update(self, entry_id: int, values: Mapping[str, Any]) -> None:
        """Set the columns ``values`` names on entry ``entry_id``."""
        names = list(values)
        columns = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start=2))
        params = [bool(values[n]) if n in ("unsure", "alert") else values[n] for n in names]
        await self.pool.execute(f"UPDATE outbox SET {columns} WHERE id = $1", entry_id, *params)

    async def dead_letters(self) -> list[OutboxEntry]:
        """Return the dead letters, oldest first."""
        rows = await self.pool.fetch("SELECT * FROM outbox WHERE state = 'dead' ORDER BY id")
        return [OutboxEntry.from_row(row) for row in rows]

    async def retry_dead(self, ids: Sequence[int] | None, now: float) -> list[int]:
        """Put dead letters (all, or ``ids``) back in line; return the ids re-queued."""
        rows = await self.pool.fetch(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, "
            "finished_at = NULL WHERE state = 'dead' "
            "AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[])) RETURNING id, lane",
            now,
            None if ids is None else list(ids),
        )
        for lane in {row["lane"] for row in rows}:
            await self.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, lane)
        return sorted(row["id"] for row in rows)

    async def claim_lane(self, lane: str, owner: str, now: float, lease_until: float) -> bool:
        """Take ``lane`` for ``owner`` (or extend its claim) unless another holds a live lease."""
        taken = await self.pool.fetchval(
            "INSERT INTO outbox_lanes (lane, owner, lease_until) VALUES ($1, $2, $4) "
            "ON CONFLICT (lane) DO UPDATE SET owner = excluded.owner, "
            "lease_until = excluded.lease_until "
            "WHERE outbox_lanes.owner = excluded.owner OR outbox_lanes.lease_until <= $3 "
            "RETURNING lane",
            lane,
            owner,
            now,
            lease_until,
        )
        return taken is not None

    async def release_lane(self, lane: str, owner: str) -> None:
        """Give up ``owner``'s claim on ``lane``."""
        await self.pool.execute(
            "DELETE FROM outbox_lanes WHERE lane = $1 AND owner = $2", lane, owner
        )
