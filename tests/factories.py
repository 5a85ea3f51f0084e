"""Factories for test objects: ``make_<thing>(**overrides)``."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from common.clock import Clock, SystemClock
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from supervisor.config import JournalConfig
from supervisor.event_intake import EventIntake
from supervisor.store.journal import SqliteJournal
from supervisor.store.sqlite import Store


def make_bus(**overrides: Any) -> tuple[MessageBus, IntentProcessor]:
    """Return a bus wired to a fresh IntentProcessor (in-memory audit, log notifications)."""
    processor = IntentProcessor()
    bus = MessageBus(processor, **overrides)
    processor.message_bus = bus
    return bus, processor


class RunningIntake:
    """An EventIntake over a store whose run task the test owns; ``stop()`` is a clean stop."""

    def __init__(
        self,
        store: Store,
        bus: MessageBus,
        clock: Clock,
        config: JournalConfig,
        journal: SqliteJournal | None = None,
    ) -> None:
        self.intake = EventIntake(journal or SqliteJournal(store), bus, clock, config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> EventIntake:
        await self.intake.start()
        self._task = asyncio.get_running_loop().create_task(self.intake.run(), name="journal")
        return self.intake

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self.intake.shutdown()


@contextlib.asynccontextmanager
async def running_intake(
    store: Store, bus: MessageBus, clock: Clock | None = None, **config: Any
) -> AsyncIterator[EventIntake]:
    """Yield a started EventIntake whose run task lives for the body of the ``async with``."""
    running = RunningIntake(store, bus, clock or SystemClock(), JournalConfig(**config))
    try:
        yield await running.start()
    finally:
        await running.stop()
