"""Per-role key-value store: JSON values namespaced by role name, on either backend.

A role reaches only its own namespace, through ``services.kv`` in its intent handlers
(``await services.kv.get(key)``). The data belongs to the infrastructure, so it survives reloads
of the role and restarts of the daemon.
"""

import json
from typing import Any

from common.kv import check_key, encode_value
from supervisor.store.base import KVBackend
from supervisor.store.sqlite import Store

MIGRATIONS = [
    """
    CREATE TABLE role_kv (
        role TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (role, key)
    )
    """,
]


class SqliteKV:
    """The KVBackend on the SQLite store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("role_kv", MIGRATIONS)

    async def get(self, role: str, key: str) -> str | None:
        """Return the JSON text under ``key``, or None."""
        row = self.store.db.execute(
            "SELECT value FROM role_kv WHERE role = ? AND key = ?", (role, key)
        ).fetchone()
        return None if row is None else str(row["value"])

    async def set(self, role: str, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO role_kv (role, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(role, key) DO UPDATE SET value = excluded.value",
                (role, key, value),
            )

    async def delete(self, role: str, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        with self.store.transaction() as db:
            cursor = db.execute("DELETE FROM role_kv WHERE role = ? AND key = ?", (role, key))
        return cursor.rowcount > 0

    async def keys(self, role: str) -> list[str]:
        """Return ``role``'s keys, sorted."""
        rows = self.store.db.execute(
            "SELECT key FROM role_kv WHERE role = ? ORDER BY key", (role,)
        ).fetchall()
        return [row["key"] for row in rows]


class KVStore:
    """The shared data; hand each role its own ``RoleKV`` with ``for_role``."""

    def __init__(self, backend: KVBackend) -> None:
        self.backend = backend

    def for_role(self, role: str) -> "RoleKV":
        """Return the key-value namespace of ``role``."""
        return RoleKV(self.backend, role)


class RoleKV:
    """One role's keys: ``await get``, ``set``, ``delete``, ``keys``."""

    def __init__(self, backend: KVBackend, role: str) -> None:
        self._backend = backend
        self.role = role

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default``."""
        text = await self._backend.get(self.role, self._key(key))
        return default if text is None else json.loads(text)

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` (anything JSON can hold) under ``key``."""
        checked = self._key(key)
        await self._backend.set(self.role, checked, encode_value(self.role, checked, value))

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        return await self._backend.delete(self.role, self._key(key))

    async def keys(self) -> list[str]:
        """Return this role's keys, sorted."""
        return await self._backend.keys(self.role)

    def _key(self, key: Any) -> str:
        return check_key(self.role, key)
