import asyncio

from common.message_bus import MessageBus
from tests.fakes.clock import settle


async def test_drain_during_a_slow_handler_waits_instead_of_dispatching_out_of_order():
    bus, seen, gate = MessageBus(), [], asyncio.Event()

    async def handle(event_data, context):
        if event_data == "first":
            await gate.wait()
        seen.append(event_data)
        return []

    bus.subscribe("order", "PING", handle)
    async with asyncio.TaskGroup() as tasks:
        dispatcher = tasks.create_task(bus.run())
        bus.publish("test", "PING", "first")
        await settle()
        bus.publish("test", "PING", "second")
        drained = tasks.create_task(bus.drain())
        await settle()
        gate.set()
        await drained
        dispatcher.cancel()
    assert seen == ["first", "second"]
