"""The TimerBackend on the SQLite store (one process: its claims never meet another's)."""

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from common.errors import StoreError
from supervisor.store.base import Advanced, Timer
from supervisor.store.sqlite import Store

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
    # Claims: the instance firing a timer now and until when (the same rules as PostgreSQL).
    """
    ALTER TABLE timers ADD COLUMN claimed_by TEXT;
    ALTER TABLE timers ADD COLUMN lease_until REAL;
    """,
    # Clustered on timer_id (WITHOUT ROWID): a new timer writes two b-trees, not three.
    """
    CREATE TABLE timers_clustered (
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
        cancelled_at REAL,
        claimed_by TEXT,
        lease_until REAL
    ) WITHOUT ROWID;
    INSERT INTO timers_clustered SELECT timer_id, label, due_at, created_at, channel_id, user_id,
        role, original_request, data, state, attempts, fired_at, cancelled_at, claimed_by,
        lease_until FROM timers;
    DROP TABLE timers;
    ALTER TABLE timers_clustered RENAME TO timers;
    CREATE INDEX timers_pending ON timers (state, due_at);
    """,
]

COLUMNS = (
    "timer_id, label, due_at, created_at, channel_id, user_id, role, original_request, data, "
    "state, attempts, fired_at, cancelled_at"
)


def timer_from_row(row: Any) -> Timer:
    """Build a Timer from a ``timers`` row holding ``COLUMNS`` (in the Timer's field order)."""
    values = list(row)
    data = values[8]
    values[8] = {} if data == "{}" else json.loads(data)
    return Timer(*values)


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
    sql = f"SELECT {COLUMNS} FROM timers"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.execute(sql + " ORDER BY due_at, timer_id", params).fetchall()
    return [timer_from_row(row) for row in rows]


class SqliteTimers:
    """Timers in the SQLite store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("timers", MIGRATIONS)

    async def add(self, timer: Timer) -> None:
        """Store a new pending timer (one statement, so its own transaction)."""
        try:
            self.store.db.execute(
                "INSERT INTO timers (timer_id, label, due_at, created_at, channel_id, user_id, "
                "role, original_request, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    timer.timer_id,
                    timer.label,
                    timer.due_at,
                    timer.created_at,
                    timer.channel_id,
                    timer.user_id,
                    timer.role,
                    timer.original_request,
                    json.dumps(timer.data, default=str) if timer.data else "{}",
                ),
            )
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"storage.path {str(self.store.path)!r}: cannot save timer {timer.label!r} ({err})"
            ) from err

    async def get(self, timer_id: str) -> Timer | None:
        """Return the timer with ``timer_id``, or None."""
        row = self.store.db.execute(
            f"SELECT {COLUMNS} FROM timers WHERE timer_id = ?", (timer_id,)
        ).fetchone()
        return timer_from_row(row) if row is not None else None

    async def query(
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

    async def pending(self) -> dict[str, float]:
        """Return each pending timer's id and when it may fire."""
        rows = self.store.db.execute(
            "SELECT timer_id, max(due_at, coalesce(lease_until, due_at)) FROM timers "
            "WHERE state = 'pending'"
        )
        return dict(rows.fetchall())

    async def cancel(self, timer_id: str, now: float) -> bool:
        """Cancel a pending timer no instance is firing now."""
        with self.store.transaction() as db:
            cursor = db.execute(
                "UPDATE timers SET state = 'cancelled', cancelled_at = ? WHERE timer_id = ? "
                "AND state = 'pending' AND (claimed_by IS NULL OR lease_until <= ?)",
                (now, timer_id, now),
            )
        return cursor.rowcount == 1

    async def advance(
        self,
        fired: Sequence[tuple[str, float]],
        due: Sequence[str],
        instance: str,
        due_by: float,
        lease_until: float,
    ) -> Advanced:
        """Mark fired what ``instance`` holds of ``fired``, then claim each of ``due`` that is
        pending and due and unclaimed by ``due_by``, in one transaction."""
        if not fired and not due:
            return Advanced(0, [], {})
        rows: list[Any] = []
        waiting: dict[str, float] = {}
        with self.store.transaction() as db:
            marked = 0
            if fired:
                marked = db.executemany(
                    "UPDATE timers SET state = 'fired', fired_at = ?, claimed_by = NULL, "
                    "lease_until = NULL WHERE timer_id = ? AND state = 'pending' "
                    "AND claimed_by = ?",
                    [(fired_at, timer_id, instance) for timer_id, fired_at in fired],
                ).rowcount
            if due:
                rows = db.execute(
                    "UPDATE timers SET attempts = attempts + 1, claimed_by = ?, lease_until = ? "
                    "WHERE timer_id IN (SELECT value FROM json_each(?)) AND +state = 'pending' "
                    f"AND due_at <= ? AND coalesce(lease_until, 0) <= ? RETURNING {COLUMNS}",
                    (instance, lease_until, json.dumps(due), due_by, due_by),
                ).fetchall()
            if len(rows) < len(due):
                taken = {row[0] for row in rows}
                rest = [timer_id for timer_id in due if timer_id not in taken]
                waiting = dict(
                    db.execute(
                        "SELECT timer_id, max(due_at, coalesce(lease_until, due_at)) FROM timers "
                        "WHERE timer_id IN (SELECT value FROM json_each(?)) "
                        "AND +state = 'pending'",
                        (json.dumps(rest),),
                    ).fetchall()
                )
        return Advanced(marked, [timer_from_row(row) for row in rows], waiting)

    async def renew(self, timer_ids: Sequence[str], instance: str, lease_until: float) -> None:
        """Extend the leases ``instance`` holds on ``timer_ids``."""
        with self.store.transaction() as db:
            db.executemany(
                "UPDATE timers SET lease_until = ? WHERE timer_id = ? AND claimed_by = ? "
                "AND state = 'pending'",
                [(lease_until, timer_id, instance) for timer_id in timer_ids],
            )

    async def release(self, timer_id: str, instance: str, not_before: float) -> None:
        """Give up ``instance``'s claim until ``not_before``."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE timers SET claimed_by = NULL, lease_until = ? "
                "WHERE timer_id = ? AND claimed_by = ? AND state = 'pending'",
                (not_before, timer_id, instance),
            )

    async def recover(self) -> None:
        """Drop every claim: the process that held it is gone (one process uses this file)."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE timers SET claimed_by = NULL, lease_until = NULL "
                "WHERE state = 'pending' AND claimed_by IS NOT NULL"
            )

    def watch(self, added: Callable[[str, float], None], resync: Callable[[], None]) -> None:
        """Nothing to watch: only this process adds timers to its SQLite file."""
