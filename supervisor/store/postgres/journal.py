"""The Journal on PostgreSQL: several processes claim entries with ``FOR UPDATE SKIP LOCKED``.

Rules kept here (the rest are the Journal's, in ``supervisor/store/journal.py``):
- A claim locks the rows it takes and skips rows another process is locking, so two processes
  claiming at once never take the same entry; a claim of another owner whose lease ended is
  taken over with ``attempts`` + 1.
- No process can tell whether another is alive, so ``recover`` returns nothing: a dead
  process's claims come back when their leases end (``stats().next_due_at`` says when).
- ``append`` sends ``intentd_journal`` in its transaction, so every process listening claims
  the new entries at once; ``watch`` registers for that wake-up.
"""

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from common.errors import StoreError
from supervisor.store.journal import (
    Appended,
    JournalEntry,
    JournalStats,
    NewEvent,
    encode_data,
    entry_from_row,
    source_states,
    target_state,
)
from supervisor.store.postgres.listener import Listener
from supervisor.store.postgres.pool import DOWN_ERRORS

CHANNEL = "intentd_journal"
_COLUMNS = (
    "event_id, key, event_type, data, publisher, source, channel_id, user_id, parent_id, created_at"
)
_APPEND = (
    f"INSERT INTO journal ({_COLUMNS}, next_attempt_at, state, owner, lease_until, attempts) "
    f"SELECT {_COLUMNS}, created_at, $11, $12, $13, $14 FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], "
    f"$10::float8[]) WITH ORDINALITY AS t({_COLUMNS}, n) ORDER BY n "
    "ON CONFLICT DO NOTHING RETURNING event_id, seq"
)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[1])


async def _append(
    conn: asyncpg.Connection,
    events: Sequence[NewEvent],
    owner: str | None,
    lease_until: float | None,
) -> list[Appended]:
    """Insert ``events`` inside the open transaction on ``conn``; claimed by ``owner`` if given."""
    claimed = owner is not None
    claim = (
        (target_state("claim"), owner, lease_until, 1) if claimed else ("pending", None, None, 0)
    )
    columns: list[list[Any]] = [[] for _ in range(10)]
    for event in events:
        values = (
            event.event_id,
            event.key,
            event.event_type,
            encode_data(event.data),
            event.publisher,
            event.source,
            event.channel_id,
            event.user_id,
            event.parent_id,
            event.created_at,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    rows = await conn.fetch(_APPEND, *columns, *claim)
    inserted = {row["event_id"]: row["seq"] for row in rows}
    known: dict[str, Any] = {}
    if len(inserted) < len(events):
        rows = await conn.fetch(
            "SELECT seq, event_id, event_type, key FROM journal "
            "WHERE key = ANY($1::text[]) OR event_id = ANY($2::text[])",
            [e.key for e in events if e.key is not None],
            [e.event_id for e in events],
        )
        for row in rows:
            known[row["event_id"]] = row
            if row["key"] is not None:
                known[f"key:{row['key']}"] = row
    if inserted:
        await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
    results: list[Appended] = []
    seen: set[str] = set()
    for event in events:
        if event.event_id in inserted and event.event_id not in seen:
            seen.add(event.event_id)
            seq = inserted[event.event_id]
            results.append(Appended(event.event_id, event.event_type, seq=seq, claimed=claimed))
            continue
        row = known.get(f"key:{event.key}") if event.key is not None else None
        row = row or known[event.event_id]
        results.append(Appended(row["event_id"], row["event_type"], duplicate=True, seq=row["seq"]))
    return results


async def _finish(
    conn: asyncpg.Connection, owner: str, event_ids: Sequence[str], now: float
) -> int:
    """Mark ``owner``'s claimed entries done on ``conn``; return how many were."""
    status = await conn.execute(
        "UPDATE journal SET state = $4, finished_at = $3, owner = NULL, lease_until = NULL "
        "WHERE event_id = ANY($2::text[]) AND owner = $1 AND state = ANY($5::text[])",
        owner,
        list(event_ids),
        now,
        target_state("finish"),
        source_states("finish"),
    )
    return _count(status)


class PostgresJournal:
    """The event journal in the shared database."""

    def __init__(self, pool: asyncpg.Pool, listener: Listener | None = None) -> None:
        self.pool = pool
        self._listener = listener

    def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` when any process appends, and when notifications may have been lost."""
        if self._listener is not None:
            self._listener.on(CHANNEL, lambda _payload: wake())
            self._listener.on_resync(wake)

    async def append(
        self,
        events: Sequence[NewEvent],
        *,
        owner: str | None = None,
        lease_until: float | None = None,
    ) -> list[Appended]:
        """Store ``events`` in one transaction, claimed by ``owner`` if given; a known key or id
        returns the first event's id and seq."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                return await _append(conn, events, owner, lease_until)
        except (asyncpg.PostgresError, OSError) as err:
            raise StoreError(f"storage.url: cannot append to the event journal ({err})") from err

    async def finish_and_append(
        self,
        owner: str,
        event_ids: Sequence[str],
        now: float,
        events: Sequence[NewEvent],
        lease_until: float,
    ) -> tuple[int, list[Appended]]:
        """``finish`` then ``append(owner=...)`` in one transaction."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                finished = await _finish(conn, owner, event_ids, now)
                return finished, await _append(conn, events, owner, lease_until)
        except (asyncpg.PostgresError, OSError) as err:
            raise StoreError(
                f"storage.url: cannot mark journal entries done and append new events ({err})"
            ) from err

    async def claim(self, owner: str, limit: int, lease: float, now: float) -> list[JournalEntry]:
        """Claim up to ``limit`` due entries for ``owner``, oldest first, skipping locked rows."""
        rows = await self.pool.fetch(
            "WITH picked AS (SELECT seq FROM journal WHERE state = ANY($5::text[]) AND ("
            "(state = 'pending' AND next_attempt_at <= $3) "
            "OR (state = 'claimed' AND lease_until <= $3 AND owner <> $1)) "
            "ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED) "
            "UPDATE journal j SET state = $6, owner = $1, lease_until = $2, "
            "attempts = j.attempts + 1 FROM picked WHERE j.seq = picked.seq RETURNING j.*",
            owner,
            now + lease,
            now,
            limit,
            source_states("claim"),
            target_state("claim"),
        )
        return sorted((entry_from_row(row) for row in rows), key=lambda entry: entry.seq)

    async def renew(self, owner: str, event_ids: Sequence[str], lease_until: float) -> int:
        """Extend ``owner``'s claims on ``event_ids``; return how many it still holds."""
        status = await self.pool.execute(
            "UPDATE journal SET lease_until = $3 WHERE event_id = ANY($2::text[]) "
            "AND owner = $1 AND state = 'claimed'",
            owner,
            list(event_ids),
            lease_until,
        )
        return _count(status)

    async def _owned(self, operation: str, sets: str, event_id: str, owner: str, *args: Any) -> int:
        status = await self.pool.execute(
            f"UPDATE journal SET state = $3, {sets}, owner = NULL, lease_until = NULL "
            "WHERE event_id = $1 AND owner = $2 AND state = ANY($4::text[])",
            event_id,
            owner,
            target_state(operation),
            source_states(operation),
            *args,
        )
        return _count(status)

    async def finish(self, owner: str, event_ids: Sequence[str], now: float) -> int:
        """Mark ``owner``'s claimed entries done; return how many were."""
        async with self.pool.acquire() as conn:
            return await _finish(conn, owner, event_ids, now)

    async def fail(self, owner: str, event_id: str, error: str, retry_at: float) -> bool:
        """Put ``owner``'s claimed entry back, due again at ``retry_at``."""
        sets = "next_attempt_at = $5, last_error = $6"
        return await self._owned("fail", sets, event_id, owner, retry_at, error) == 1

    async def park(self, owner: str, event_id: str, error: str, now: float) -> bool:
        """Park ``owner``'s claimed entry as dead."""
        sets = "finished_at = $5, last_error = $6"
        return await self._owned("park", sets, event_id, owner, now, error) == 1

    async def release(self, owner: str) -> int:
        """Return ``owner``'s unfinished claims to pending."""
        status = await self.pool.execute(
            "UPDATE journal SET state = $2, owner = NULL, lease_until = NULL "
            "WHERE owner = $1 AND state = ANY($3::text[])",
            owner,
            target_state("release"),
            source_states("release"),
        )
        return _count(status)

    async def recover(self, now: float) -> int:
        """Return nothing: another process's claim ends with its lease, not at this start."""
        return 0

    async def get(self, event_id: str) -> JournalEntry | None:
        """Return the entry of ``event_id``, or None."""
        row = await self.pool.fetchrow("SELECT * FROM journal WHERE event_id = $1", event_id)
        return entry_from_row(row) if row is not None else None

    async def dead(self, limit: int = 1000) -> list[JournalEntry]:
        """Return the dead entries, oldest first."""
        rows = await self.pool.fetch(
            "SELECT * FROM journal WHERE state = 'dead' ORDER BY seq LIMIT $1", limit
        )
        return [entry_from_row(row) for row in rows]

    async def retry(self, event_ids: Sequence[str] | None, now: float) -> list[str]:
        """Make the given dead entries (every one with None) pending again; return their ids."""
        rows = await self.pool.fetch(
            "UPDATE journal SET state = $2, attempts = 0, next_attempt_at = $1, "
            "finished_at = NULL WHERE state = ANY($3::text[]) "
            "AND ($4::text[] IS NULL OR event_id = ANY($4::text[])) RETURNING event_id",
            now,
            target_state("retry"),
            source_states("retry"),
            None if event_ids is None else list(event_ids),
        )
        if rows:
            await self.pool.execute("SELECT pg_notify($1, '')", CHANNEL)
        return sorted(row["event_id"] for row in rows)

    async def stats(self, now: float) -> JournalStats:
        """Return the backlog, its oldest entry's time, the dead count and the next due time.

        The next due time includes when a claim's lease ends: then another process may take it.
        """
        try:
            row = await self.pool.fetchrow(
                "SELECT count(*) FILTER (WHERE state IN ('claimed', 'pending')) AS backlog, "
                "min(seq) FILTER (WHERE state IN ('claimed', 'pending')) AS oldest_seq, "
                "count(*) FILTER (WHERE state = 'dead') AS dead, "
                "least(min(next_attempt_at) FILTER (WHERE state = 'pending'), "
                "min(lease_until) FILTER (WHERE state = 'claimed')) AS due "
                "FROM journal WHERE state IN ('claimed', 'pending', 'dead')"
            )
            oldest = None
            if row["oldest_seq"] is not None:
                oldest = await self.pool.fetchval(
                    "SELECT created_at FROM journal WHERE seq = $1", row["oldest_seq"]
                )
        except DOWN_ERRORS as err:
            raise StoreError(
                f"storage.url: cannot read the event journal's figures ({err})"
            ) from err
        return JournalStats(
            backlog=row["backlog"], oldest_at=oldest, dead=row["dead"], next_due_at=row["due"]
        )

    async def prune(self, before: float) -> int:
        """Delete done entries finished before ``before``; return how many."""
        status = await self.pool.execute(
            "DELETE FROM journal WHERE state = 'done' AND finished_at < $1", before
        )
        return _count(status)
