"""The KVBackend on PostgreSQL: one ``role_kv`` row per (role, key), the value as jsonb."""

import asyncpg


class PostgresKV:
    """Role key-value data in the shared database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, role: str, key: str) -> str | None:
        """Return the JSON text under ``key``, or None."""
        value = await self.pool.fetchval(
            "SELECT value::text FROM role_kv WHERE role = $1 AND key = $2", role, key
        )
        return None if value is None else str(value)

    async def set(self, role: str, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        await self.pool.execute(
            "INSERT INTO role_kv (role, key, value) VALUES ($1, $2, $3::jsonb) "
            "ON CONFLICT (role, key) DO UPDATE SET value = excluded.value",
            role,
            key,
            value,
        )

    async def delete(self, role: str, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        status = await self.pool.execute(
            "DELETE FROM role_kv WHERE role = $1 AND key = $2", role, key
        )
        return bool(status != "DELETE 0")

    async def keys(self, role: str) -> list[str]:
        """Return ``role``'s keys, sorted."""
        rows = await self.pool.fetch(
            'SELECT key FROM role_kv WHERE role = $1 ORDER BY key COLLATE "C"', role
        )
        return [row["key"] for row in rows]
