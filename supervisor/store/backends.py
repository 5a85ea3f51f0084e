"""Open the store ``storage`` names: SQLite at ``storage.path``, or PostgreSQL at ``storage.url``.

Both give the same parts behind the interfaces of ``supervisor.store.base``.
"""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.config import StorageConfig, redact_url
from supervisor.store.audit import SqliteAudit
from supervisor.store.base import (
    AuditBackend,
    KVBackend,
    OutboxBackend,
    ScheduleBackend,
    TimerBackend,
)
from supervisor.store.journal import Journal, SqliteJournal
from supervisor.store.kv import SqliteKV
from supervisor.store.outbox import SqliteOutbox
from supervisor.store.postgres.audit import PostgresAudit
from supervisor.store.postgres.instances import Instances
from supervisor.store.postgres.journal import PostgresJournal
from supervisor.store.postgres.kv import PostgresKV
from supervisor.store.postgres.listener import Listener
from supervisor.store.postgres.outbox import PostgresOutbox
from supervisor.store.postgres.pool import open_pool, pool_not_ready
from supervisor.store.postgres.schedules import PostgresSchedules
from supervisor.store.postgres.schema import migrate
from supervisor.store.postgres.timers import PostgresTimers
from supervisor.store.schedules import SqliteSchedules
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers


@dataclass
class StoreParts:
    """One opened store: each part on one backend, and how to run, check and close it."""

    kind: str  # "sqlite" or "postgres"
    kv: KVBackend
    audit: AuditBackend
    timers: TimerBackend
    journal: Journal
    outbox: OutboxBackend
    schedules: ScheduleBackend
    run: Callable[[], Coroutine[Any, Any, None]]  # the store's own background work, until cancelled
    not_ready: Callable[[], Awaitable[str | None]]
    close: Callable[[], Awaitable[None]]
    health: Callable[[], str | None]  # why the store cannot be used now, as last checked
    sqlite: Store | None = None  # the SQLite connection, for the parts that use it directly
    listener: Listener | None = None  # PostgreSQL's LISTEN connection
    pool: Any = None  # PostgreSQL's asyncpg pool
    instances: Callable[[], list[dict[str, Any]]] | None = None  # the cluster, as last read

    @property
    def shared(self) -> bool:
        """Return True when several processes may use this store at once (PostgreSQL)."""
        return self.kind == "postgres"


async def open_parts(
    config: StorageConfig,
    resolve: Callable[[Path], Path],
    instance: str,
    *,
    heartbeat: float = 5.0,
) -> StoreParts:
    """Open (and migrate) the configured store; return its parts. On PostgreSQL ``instance``
    writes its heartbeat (and checks the database) every ``heartbeat`` seconds while it runs."""
    if config.url is None:
        return sqlite_parts(Store(resolve(config.path), synchronous=config.synchronous.upper()))
    shown = redact_url(config.url)
    pool = await open_pool(config)
    try:
        await migrate(pool, instance, shown)
    except BaseException:
        await pool.close()
        raise
    listener = Listener(config.url, shown, connect_timeout=config.connect_timeout)
    instances = Instances(pool, instance, shown, every=heartbeat)

    async def not_ready() -> str | None:
        return await pool_not_ready(pool, shown)

    async def run() -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(listener.run(), name="postgres-listener")
            tasks.create_task(instances.run(), name="postgres-instances")

    return StoreParts(
        "postgres",
        PostgresKV(pool),
        PostgresAudit(pool),
        PostgresTimers(pool, listener),
        PostgresJournal(pool, listener),
        PostgresOutbox(pool, listener),
        PostgresSchedules(pool),
        run,
        not_ready,
        pool.close,
        lambda: instances.problem,
        listener=listener,
        pool=pool,
        instances=lambda: instances.seen,
    )


def sqlite_parts(store: Store) -> StoreParts:
    """Return the parts on an open SQLite store; their ``close`` closes ``store``."""

    async def run() -> None:
        await asyncio.Future()  # nothing runs in the background; wait to be cancelled

    async def not_ready() -> str | None:
        return store.not_ready()

    async def close() -> None:
        store.close()

    return StoreParts(
        "sqlite",
        SqliteKV(store),
        SqliteAudit(store),
        SqliteTimers(store),
        SqliteJournal(store),
        SqliteOutbox(store),
        SqliteSchedules(store),
        run,
        not_ready,
        close,
        store.not_ready,
        sqlite=store,
    )
