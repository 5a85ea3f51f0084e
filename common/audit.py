"""Audit records and the in-memory sink (the durable one lives in the store)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(slots=True)
class AuditRecord:
    """One append-only audit entry: who did what, and the chain of ids that led to it."""

    action: str
    details: dict[str, Any]
    user_id: str | None
    role: str | None
    intent_id: str
    parent_id: str | None
    created_at: datetime


class AuditSink(Protocol):
    """Where audit records go."""

    async def append(self, record: AuditRecord) -> None: ...

    async def append_many(self, records: Sequence[AuditRecord]) -> None:
        """Append several records at once: all of them, or none (one transaction)."""
        ...

    async def recent(self, limit: int) -> list[AuditRecord]: ...


@dataclass
class MemoryAuditSink:
    """Keep audit records in a list; for tests and the storeless default."""

    records: list[AuditRecord] = field(default_factory=list)

    async def append(self, record: AuditRecord) -> None:
        """Add ``record`` to the list."""
        self.records.append(record)

    async def append_many(self, records: Sequence[AuditRecord]) -> None:
        """Add ``records`` to the list."""
        self.records.extend(records)

    async def recent(self, limit: int) -> list[AuditRecord]:
        """Return the last ``limit`` records, newest first."""
        return self.records[: -limit - 1 : -1]
