"""Open the store ``storage`` names: SQLite at ``storage.path``, or PostgreSQL at ``storage.url``.

Both give the same parts behind the interfaces of ``supervisor.store.base``.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from supervisor.config import StorageConfig, redact_url
from supervisor.store.audit import SqliteAudit
from supervisor.store.base import AuditBackend, KVBackend
from supervisor.store.kv import SqliteKV
from supervisor.store.postgres.audit import PostgresAudit
from supervisor.store.postgres.kv import PostgresKV
from supervisor.store.postgres.pool import open_pool, pool_not_ready
from supervisor.store.postgres.schema import migrate
from supervisor.store.sqlite import Store


@dataclass
class StoreParts:
    """One opened store: each part on one backend, and how to check and close it."""

    kind: str  # "sqlite" or "postgres"
    kv: KVBackend
    audit: AuditBackend
    not_ready: Callable[[], Awaitable[str | None]]
    close: Callable[[], Awaitable[None]]
    sqlite: Store | None = None  # the SQLite connection, for the parts that use it directly


async def open_parts(
    config: StorageConfig, resolve: Callable[[Path], Path], instance: str
) -> StoreParts:
    """Open (and migrate) the configured store; return its parts."""
    if config.url is None:
        store = Store(resolve(config.path), synchronous=config.synchronous.upper())

        async def sqlite_not_ready() -> str | None:
            return store.not_ready()

        async def sqlite_close() -> None:
            store.close()

        return StoreParts(
            "sqlite", SqliteKV(store), SqliteAudit(store), sqlite_not_ready, sqlite_close, store
        )
    shown = redact_url(config.url)
    pool = await open_pool(config)
    try:
        await migrate(pool, instance, shown)
    except BaseException:
        await pool.close()
        raise

    async def postgres_not_ready() -> str | None:
        return await pool_not_ready(pool, shown)

    return StoreParts(
        "postgres", PostgresKV(pool), PostgresAudit(pool), postgres_not_ready, pool.close
    )
