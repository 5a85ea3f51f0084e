"""The AuditBackend on PostgreSQL: ``audit_log``, append-only (a trigger refuses changes)."""

import json
from collections.abc import Sequence

import asyncpg

from common.audit import AuditRecord


class PostgresAudit:
    """The audit log in the shared database; a second record for one intent id is ignored."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def append_many(self, records: Sequence[AuditRecord]) -> None:
        """Commit ``records`` in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO audit_log (created_at, action, details, user_id, role, intent_id, "
                "parent_id) VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) "
                "ON CONFLICT (intent_id) DO NOTHING",
                [
                    (
                        r.created_at,
                        r.action,
                        json.dumps(r.details, default=str),
                        r.user_id,
                        r.role,
                        r.intent_id,
                        r.parent_id,
                    )
                    for r in records
                ],
            )

    async def tail(self, n: int, action: str | None = None) -> list[AuditRecord]:
        """Return the last ``n`` records (of ``action`` only, if given), oldest first."""
        rows = await self.pool.fetch(
            "SELECT created_at, action, details::text AS details, user_id, role, intent_id, "
            "parent_id FROM audit_log WHERE $1::text IS NULL OR action = $1 "
            "ORDER BY seq DESC LIMIT $2",
            action,
            n,
        )
        return [
            AuditRecord(
                action=row["action"],
                details=json.loads(row["details"]),
                user_id=row["user_id"],
                role=row["role"],
                intent_id=row["intent_id"],
                parent_id=row["parent_id"],
                created_at=row["created_at"],
            )
            for row in reversed(rows)
        ]
