"""LISTEN/NOTIFY: a journal entry, a notification or a timer stored by one process wakes the
others at once; the listening connection comes back after the server drops it."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from supervisor.config import StorageConfig
from supervisor.store.base import NewNotification, Timer
from supervisor.store.journal import NewEvent
from supervisor.store.postgres.journal import PostgresJournal
from supervisor.store.postgres.listener import Listener
from supervisor.store.postgres.outbox import PostgresOutbox
from supervisor.store.postgres.pool import open_pool
from supervisor.store.postgres.schema import migrate
from supervisor.store.postgres.timers import PostgresTimers


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    opened = await open_pool(StorageConfig(url=postgres_url))
    await migrate(opened, "test", "test")
    yield opened
    await opened.close()


async def test_what_one_process_stores_wakes_another_that_listens(
    pool: asyncpg.Pool, postgres_url: str
) -> None:
    listener = Listener(postgres_url, "test")
    woken: asyncio.Queue[str] = asyncio.Queue()
    PostgresJournal(pool, listener).watch(lambda: woken.put_nowait("journal"))
    PostgresOutbox(pool, listener).watch(lambda: woken.put_nowait("outbox"))
    PostgresTimers(pool, listener).watch(
        lambda timer_id, due_at: woken.put_nowait(f"timer {timer_id} {due_at}"), lambda: None
    )
    listening = asyncio.create_task(listener.run())
    try:
        async with asyncio.timeout(10):
            await listener.wait_listening()
            while not woken.empty():  # the wake-ups of (re)connecting
                woken.get_nowait()
            other = (
                PostgresJournal(pool),
                PostgresOutbox(pool),
                PostgresTimers(pool, Listener("", "")),
            )
            await other[0].append([NewEvent("evt-1", "PING", {}, "http", "http", 1.0)])
            note = ("int-1", "slack", "C1", "slack:C1", "hi", "medium", None, None, False, 1.0)
            await other[1].enqueue(NewNotification(*note))
            timer = ("tmr-1", "tea", 99.5, 1.0, None, None, None, None, {}, "pending", 0)
            await other[2].add(Timer(*timer, None, None))
            seen = [await woken.get() for _ in range(3)]
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
    assert seen == ["journal", "outbox", "timer tmr-1 99.5"]


async def test_a_dropped_listening_connection_is_opened_again_and_resyncs(
    pool: asyncpg.Pool, postgres_url: str
) -> None:
    listener = Listener(postgres_url, "test")
    resyncs: asyncio.Queue[None] = asyncio.Queue()
    PostgresJournal(pool, listener).watch(lambda: resyncs.put_nowait(None))
    listening = asyncio.create_task(listener.run())
    try:
        async with asyncio.timeout(10):
            await resyncs.get()  # the first connection
            await pool.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            )
            await resyncs.get()  # connected again: look at the tables, a wake-up may be lost
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
