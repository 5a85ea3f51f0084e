"""Two timer services (two instances) on one PostgreSQL database: each timer fires once."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from common.context import EventContext
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from supervisor.config import StorageConfig
from supervisor.scheduling.timers import TimerService
from supervisor.store.backends import StoreParts, open_parts
from tests.fakes.clock import FakeClock

LEASE = 5.0


class Instance:
    """One process's timer path: its own bus and service, the shared database."""

    def __init__(self, name: str, parts: StoreParts, clock: FakeClock) -> None:
        self.parts = parts
        self.bus = MessageBus(IntentProcessor(), clock=clock.time)
        self.fired: list[tuple[str, int]] = []
        self.bus.subscribe("test", "TIMER_EXPIRED", self._record)
        self.timers = TimerService(parts.timers, self.bus, clock, instance=name, lease=LEASE)
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self.timers.run()), loop.create_task(parts.run())]

    def _record(self, data: dict[str, Any], context: EventContext) -> list[Any]:
        self.fired.append((data["timer_id"], context.attempt))
        return []

    async def settle(self) -> None:
        await self.timers.settled()
        await self.bus.drain()
        await self.timers.settled()

    async def kill(self) -> None:
        """Stop without processing what its bus holds, as SIGKILL would."""
        self.timers.stop()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.parts.close()


def notified(instance: Instance, count: int) -> asyncio.Event:
    """Return an event set once ``instance`` has heard of ``count`` new timers (after its
    service, which registered first, has armed them)."""
    heard: list[str] = []
    done = asyncio.Event()

    def added(timer_id: str, due_at: float) -> None:
        heard.append(timer_id)
        if len(heard) >= count:
            done.set()

    instance.parts.timers.watch(added, lambda: None)
    return done


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[Instance, Instance, FakeClock]]:
    clock = FakeClock()
    a = Instance("a", await open_parts(StorageConfig(url=postgres_url), Path, "a"), clock)
    b = Instance("b", await open_parts(StorageConfig(url=postgres_url), Path, "b"), clock)
    for instance in (a, b):
        await instance.timers.start()
        assert instance.parts.listener is not None
        await asyncio.wait_for(instance.parts.listener.wait_listening(), 10)
    yield a, b, clock
    for instance in (a, b):
        if not instance.tasks[1].done():
            await instance.kill()


async def test_a_timer_created_on_one_instance_is_armed_on_the_other(pair) -> None:
    a, b, _ = pair
    heard = notified(b, 1)
    timer_id = await a.timers.create(duration=60, label="tea")
    await asyncio.wait_for(heard.wait(), 10)  # LISTEN/NOTIFY crosses a real connection
    assert (timer_id in b.timers._armed, b.timers.pending_count()) == (True, 1)


async def test_timers_due_together_on_two_instances_each_fire_once(pair) -> None:
    a, b, clock = pair
    heard = [notified(a, 40), notified(b, 40)]  # each hears its own timers too
    ids = [await (a if n % 2 else b).timers.create(duration=10, label=str(n)) for n in range(40)]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in heard)), 10)
    assert (len(a.timers._armed), len(b.timers._armed)) == (40, 40)
    a.bus.start()
    b.bus.start()
    await clock.advance(10)
    for _ in range(2):
        await a.settle()
        await b.settle()
    fired = a.fired + b.fired
    assert sorted(fired) == sorted((timer_id, 1) for timer_id in ids)
    assert await a.timers.list() == []


async def test_a_dead_instances_claim_is_taken_over_when_its_lease_ends(pair) -> None:
    a, b, clock = pair
    heard = notified(b, 1)
    timer_id = await a.timers.create(duration=10, label="tea")
    await asyncio.wait_for(heard.wait(), 10)
    b.timers.stop()  # a fires first; b looks only when a's lease would end
    await clock.advance(10)
    await a.timers.settled()  # a claimed it and queued the event; its bus never runs it
    assert a.fired == [] and (await b.timers.get(timer_id)).attempts == 1  # type: ignore[union-attr]
    await a.kill()
    await b.timers.start()  # re-arms at the end of a's lease
    b.bus.start()
    await clock.advance(LEASE - 0.1)
    await b.settle()
    assert b.fired == []
    await clock.advance(0.1)
    await b.settle()
    assert b.fired == [(timer_id, 2)]
    timer = await b.timers.get(timer_id)
    assert timer is not None and timer.state == "fired"
