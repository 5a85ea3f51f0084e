"""The OutboxBackend on the SQLite store: one process, so a lane is always its own."""

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from supervisor.store.base import NewNotification, OutboxEntry
from supervisor.store.sqlite import Store

MIGRATIONS = [
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        lane TEXT NOT NULL,
        text TEXT NOT NULL,
        priority TEXT NOT NULL,
        user_id TEXT,
        parent_id TEXT,
        alert INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        parts_sent INTEGER NOT NULL DEFAULT 0,
        unsure INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        created_at REAL NOT NULL,
        finished_at REAL,
        last_error TEXT
    );
    CREATE INDEX outbox_pending ON outbox (state, lane, id);
    """,
]


def migrate(store: Store) -> None:
    """Create or upgrade the outbox table."""
    store.migrate("outbox", MIGRATIONS)


def dead_letters(db: sqlite3.Connection) -> list[OutboxEntry]:
    """Return the dead letters, oldest first."""
    rows = db.execute("SELECT * FROM outbox WHERE state = 'dead' ORDER BY id").fetchall()
    return [OutboxEntry.from_row(row) for row in rows]


def retry_dead_letters(store: Store, ids: Sequence[int] | None, now: float) -> list[int]:
    """Put dead letters (all, or those in ``ids``) back in line; return the ids re-queued."""
    with store.transaction() as db:
        if ids is None:
            found = [row[0] for row in db.execute("SELECT id FROM outbox WHERE state = 'dead'")]
        else:
            marks = ",".join("?" * len(ids))
            found = [
                row[0]
                for row in db.execute(
                    f"SELECT id FROM outbox WHERE state = 'dead' AND id IN ({marks})", list(ids)
                )
            ]
        db.executemany(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
            "finished_at = NULL WHERE id = ?",
            [(now, entry_id) for entry_id in found],
        )
    return sorted(found)


class SqliteOutbox:
    """Stored notifications in the daemon's SQLite file."""

    def __init__(self, store: Store) -> None:
        self.store = store
        migrate(store)

    async def enqueue(self, note: NewNotification) -> tuple[int, bool]:
        """Store ``note`` unless its key is known; return its id and whether it was new."""
        with self.store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO outbox (key, kind, target, lane, text, priority, user_id, parent_id, "
                "alert, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO NOTHING",
                (
                    note.key,
                    note.kind,
                    note.target,
                    note.lane,
                    note.text,
                    note.priority,
                    note.user_id,
                    note.parent_id,
                    int(note.alert),
                    note.created_at,
                    note.created_at,
                ),
            )
            inserted = cursor.rowcount == 1
            (entry_id,) = db.execute("SELECT id FROM outbox WHERE key = ?", (note.key,)).fetchone()
        return int(entry_id), inserted

    async def get(self, entry_id: int) -> OutboxEntry | None:
        """Return the entry with ``entry_id``, or None."""
        row = self.store.db.execute("SELECT * FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        return OutboxEntry.from_row(row) if row is not None else None

    async def head(self, lane: str) -> OutboxEntry | None:
        """Return the oldest pending entry of ``lane``, or None."""
        row = self.store.db.execute(
            "SELECT * FROM outbox WHERE state = 'pending' AND lane = ? ORDER BY id LIMIT 1",
            (lane,),
        ).fetchone()
        return OutboxEntry.from_row(row) if row is not None else None

    async def pending_lanes(self) -> list[str]:
        """Return the lanes that have pending entries."""
        rows = self.store.db.execute("SELECT DISTINCT lane FROM outbox WHERE state = 'pending'")
        return [row[0] for row in rows]

    async def count(self, state: str) -> int:
        """Return how many entries are in ``state``."""
        (count,) = self.store.db.execute(
            "SELECT count(*) FROM outbox WHERE state = ?", (state,)
        ).fetchone()
        return int(count)

    async def update(self, entry_id: int, values: Mapping[str, Any]) -> None:
        """Set the columns ``values`` names on entry ``entry_id``."""
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.store.transaction() as db:
            db.execute(f"UPDATE outbox SET {columns} WHERE id = ?", (*values.values(), entry_id))

    async def dead_letters(self) -> list[OutboxEntry]:
        """Return the dead letters, oldest first."""
        return dead_letters(self.store.db)

    async def retry_dead(self, ids: Sequence[int] | None, now: float) -> list[int]:
        """Put dead letters (all, or ``ids``) back in line; return the ids re-queued."""
        return retry_dead_letters(self.store, ids, now)

    async def claim_lane(self, lane: str, owner: str, now: float, lease_until: float) -> bool:
        """Return True: one process delivers every lane."""
        return True

    async def release_lane(self, lane: str, owner: str) -> None:
        """Do nothing: lanes are not shared."""

    def watch(self, wake: Callable[[], None]) -> None:
        """Do nothing: only this process stores notifications."""
