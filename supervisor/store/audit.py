"""The durable audit log: append-only; a record is committed before ``append()`` returns.

A record whose intent id is already in the log is ignored, so an intent carried out again is
logged once.
"""

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from common.audit import AuditRecord
from common.errors import StoreError
from supervisor.store.base import AuditBackend
from supervisor.store.sqlite import Store

MIGRATIONS = [
    """
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        action TEXT NOT NULL,
        details TEXT NOT NULL,
        user_id TEXT,
        role TEXT,
        intent_id TEXT NOT NULL,
        parent_id TEXT
    );
    CREATE INDEX audit_log_action ON audit_log (action, seq);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # One record per intent: an intent carried out again (a timer re-fired after a crash keeps
    # its intent ids) is not logged twice.
    "CREATE UNIQUE INDEX audit_log_intent ON audit_log (intent_id);",
]

_INSERT = (
    "INSERT OR IGNORE INTO audit_log "
    "(created_at, action, details, user_id, role, intent_id, parent_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def migrate(store: Store) -> None:
    """Create or upgrade the audit tables."""
    store.migrate("audit", MIGRATIONS)


def tail(db: sqlite3.Connection, n: int = 20, action: str | None = None) -> list[AuditRecord]:
    """Return the last ``n`` records (of ``action`` only, if given), oldest first."""
    sql = "SELECT * FROM audit_log"
    params: list[object] = []
    if action is not None:
        sql += " WHERE action = ?"
        params.append(action)
    rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, n]).fetchall()
    return [_record(row) for row in reversed(rows)]


def _record(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        action=row["action"],
        details=json.loads(row["details"]),
        user_id=row["user_id"],
        role=row["role"],
        intent_id=row["intent_id"],
        parent_id=row["parent_id"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )


# one encoder for every row: json.dumps(..., default=str) builds a new one per call
_DETAILS = json.JSONEncoder(default=str)


def _row(record: AuditRecord) -> tuple[object, ...]:
    return (
        record.created_at.isoformat(),
        record.action,
        _DETAILS.encode(record.details),
        record.user_id,
        record.role,
        record.intent_id,
        record.parent_id,
    )


class SqliteAudit:
    """The AuditBackend on the SQLite store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        migrate(store)

    async def append_many(self, records: Sequence[AuditRecord]) -> None:
        """Commit ``records`` in one transaction; raise StoreError if they cannot be written."""
        try:
            with self.store.transaction() as db:
                db.executemany(_INSERT, [_row(record) for record in records])
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"store.path {str(self.store.path)!r}: cannot append to the audit log ({err})"
            ) from err

    async def tail(self, n: int, action: str | None = None) -> list[AuditRecord]:
        """Return the last ``n`` records (of ``action`` only, if given), oldest first."""
        return tail(self.store.db, n, action)


class DurableAuditSink:
    """An AuditSink that commits each record to its backend before returning."""

    def __init__(self, backend: AuditBackend) -> None:
        self.backend = backend

    async def append(self, record: AuditRecord) -> None:
        """Commit ``record``; raise StoreError if it cannot be written."""
        await self.backend.append_many((record,))

    async def append_many(self, records: Sequence[AuditRecord]) -> None:
        """Commit several records in one transaction (far faster than one commit each)."""
        await self.backend.append_many(records)

    async def tail(self, n: int = 20, action: str | None = None) -> list[AuditRecord]:
        """Return the last ``n`` records (of ``action`` only, if given), oldest first."""
        return await self.backend.tail(n, action)

    async def recent(self, limit: int) -> list[AuditRecord]:
        """Return the last ``limit`` records, newest first."""
        return (await self.backend.tail(limit))[::-1]
