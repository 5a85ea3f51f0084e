"""The store's parts as async interfaces; SQLite (one process) and PostgreSQL (a cluster) each
implement every one, and one contract suite (tests/supervisor/store/test_contract.py) runs on both.

Rules every implementation keeps:
- A method returns only once its change is committed.
- Values cross the interface as plain data: JSON text for kv values, ``AuditRecord`` for audit.
- Claims (timers, schedule runs, outbox lanes) carry the claiming instance's name and a lease
  end (epoch seconds); a claim whose lease has ended may be taken by another instance.
"""

from collections.abc import Sequence
from typing import Protocol

from common.audit import AuditRecord


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
