"""Per-role key-value store: JSON values in one SQLite table, namespaced by role name.

A role reaches only its own namespace, through ``services.kv`` in its intent handlers. The data
belongs to the infrastructure, so it survives reloads of the role and restarts of the daemon.
"""

import json
from typing import Any

from common.kv import check_key, encode_value
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


class KVStore:
    """The shared table; hand each role its own ``RoleKV`` with ``for_role``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("role_kv", MIGRATIONS)

    def for_role(self, role: str) -> "RoleKV":
        """Return the key-value namespace of ``role``."""
        return RoleKV(self.store, role)


class RoleKV:
    """One role's keys: ``get``, ``set``, ``delete``, ``keys``."""

    def __init__(self, store: Store, role: str) -> None:
        self._store = store
        self.role = role

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default``."""
        row = self._store.db.execute(
            "SELECT value FROM role_kv WHERE role = ? AND key = ?", (self.role, self._key(key))
        ).fetchone()
        return default if row is None else json.loads(row["value"])

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (anything JSON can hold) under ``key``."""
        text = encode_value(self.role, key, value)
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO role_kv (role, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(role, key) DO UPDATE SET value = excluded.value",
                (self.role, self._key(key), text),
            )

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        with self._store.transaction() as db:
            cursor = db.execute(
                "DELETE FROM role_kv WHERE role = ? AND key = ?", (self.role, self._key(key))
            )
        return cursor.rowcount > 0

    def keys(self) -> list[str]:
        """Return this role's keys, sorted."""
        rows = self._store.db.execute(
            "SELECT key FROM role_kv WHERE role = ? ORDER BY key", (self.role,)
        ).fetchall()
        return [row["key"] for row in rows]

    def _key(self, key: Any) -> str:
        return check_key(self.role, key)
