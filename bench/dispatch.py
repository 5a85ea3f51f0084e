"""Dispatch rows: publish -> pure handler -> one role intent -> async role intent handler.

Three rows, each measured beside its anchors in interleaved rounds:
- throughput with one subscriber whose handler returns one role intent, against a bare loop doing
  the same handler call and the same intent handler await (the floor), pyee and blinker;
- the same with a handler that returns [], against the same floor;
- publish -> handled latency, one event in flight at a time, p99, against an asyncio.Queue bus.
Run: .venv/bin/python bench/dispatch.py [events] [rounds]
"""

import asyncio
import gc
import sys
import time
from dataclasses import dataclass
from typing import Any

import structlog
from _rounds import interleave, median, median_ratio, percentile, row
from blinker import Signal
from pyee import EventEmitter

from common.context import EventContext
from common.intent_processor import IntentProcessor
from common.intents import Intent
from common.message_bus import MessageBus


@dataclass
class OrderIntent(Intent):
    """A role intent: record an order."""

    order: int

    def validate(self) -> bool:
        return self.order >= 0


def handle_order(event_data: dict[str, Any], context: Any) -> list[Intent]:
    """A pure handler: one role intent per event."""
    return [OrderIntent(order=event_data["order"])]


def handle_quietly(event_data: dict[str, Any], context: Any) -> list[Intent]:
    """A pure handler with nothing to ask for."""
    return []


class Sink:
    """Where the role intent handler appends."""

    def __init__(self) -> None:
        self.orders: list[int] = []

    async def process_order(self, intent: OrderIntent) -> None:
        self.orders.append(intent.order)


def context_for(n: int) -> EventContext:
    return EventContext(f"e{n}", "ORDER_PLACED", "bench", time.time(), None, "U1")


async def floor(events: int) -> float:
    """Events/s for calling the handler and awaiting the intent handler directly."""
    sink = Sink()
    started = time.perf_counter()
    for n in range(events):
        for intent in handle_order({"order": n}, context_for(n)):
            await sink.process_order(intent)  # type: ignore[arg-type]
        if n % 1000 == 999:
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    assert len(sink.orders) == events
    return events / elapsed


async def with_pyee(events: int) -> float:
    """Events/s through pyee's EventEmitter to a listener doing the same call and append."""
    sink: list[Intent] = []
    emitter = EventEmitter()
    emitter.on("ORDER_PLACED", lambda data, ctx: sink.extend(handle_order(data, ctx)))
    started = time.perf_counter()
    for n in range(events):
        emitter.emit("ORDER_PLACED", {"order": n}, context_for(n))
        if n % 1000 == 999:
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    assert len(sink) == events
    return events / elapsed


async def with_blinker(events: int) -> float:
    """Events/s through a blinker Signal to a receiver doing the same call and append."""
    sink: list[Intent] = []
    signal = Signal()

    def receiver(sender: Any, data: dict[str, Any], context: Any) -> None:
        sink.extend(handle_order(data, context))

    signal.connect(receiver)
    started = time.perf_counter()
    for n in range(events):
        signal.send("bench", data={"order": n}, context=context_for(n))
        if n % 1000 == 999:
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    assert len(sink) == events
    return events / elapsed


def make_bus(handler: Any) -> tuple[MessageBus, Sink]:
    sink = Sink()
    processor = IntentProcessor()
    processor.register_role_intent_handler(OrderIntent, sink.process_order, role="bench")
    bus = MessageBus(processor, max_queue=10_000_000)
    bus.subscribe("bench", "ORDER_PLACED", handler)
    return bus, sink


async def through_bus(events: int, handler: Any) -> float:
    """Events/s through publish -> dispatcher -> handler -> IntentProcessor -> intent handler."""
    bus, sink = make_bus(handler)
    bus.start()
    started = time.perf_counter()
    for n in range(events):
        bus.publish("bench", "ORDER_PLACED", {"order": n}, user_id="U1")
        if n % 1000 == 999:
            await asyncio.sleep(0)
    await bus.drain()
    elapsed = time.perf_counter() - started
    await bus.stop()
    assert len(sink.orders) == (events if handler is handle_order else 0)
    return events / elapsed


async def bus_latency(samples: int) -> float:
    """Return the p99 publish->handled latency (seconds) through the bus, one event at a time."""
    published = [0.0]
    latencies: list[float] = []
    handled = asyncio.Event()

    def timed(event_data: dict[str, Any], context: Any) -> list[Intent]:
        latencies.append(time.perf_counter() - published[0])
        handled.set()
        return handle_order(event_data, context)

    bus, _ = make_bus(timed)
    bus.start()
    for n in range(samples):
        handled.clear()
        published[0] = time.perf_counter()
        bus.publish("bench", "ORDER_PLACED", {"order": n}, user_id="U1")
        await handled.wait()
    await bus.stop()
    return percentile(latencies, 0.99)


async def queue_latency(samples: int) -> float:
    """Return the same p99 through an asyncio.Queue and one consumer task (the anchor)."""
    queue: asyncio.Queue[tuple[float, int]] = asyncio.Queue()
    sink = Sink()
    latencies: list[float] = []
    handled = asyncio.Event()

    async def consume() -> None:
        while True:
            published, n = await queue.get()
            latencies.append(time.perf_counter() - published)
            handled.set()
            for intent in handle_order({"order": n}, context_for(n)):
                await sink.process_order(intent)  # type: ignore[arg-type]

    consumer = asyncio.get_running_loop().create_task(consume())
    for n in range(samples):
        handled.clear()
        queue.put_nowait((time.perf_counter(), n))
        await handled.wait()
    consumer.cancel()
    return percentile(latencies, 0.99)


async def main(events: int, rounds: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    gc.collect()
    rates = await interleave(
        rounds,
        {
            "floor": lambda: floor(events),
            "intentd": lambda: through_bus(events, handle_order),
            "intentd []": lambda: through_bus(events, handle_quietly),
            "pyee": lambda: with_pyee(events),
            "blinker": lambda: with_blinker(events),
        },
    )
    fig = {name: median(values) for name, values in rates.items()}
    slowdown = median_ratio(rates["floor"], rates["intentd"])
    row(
        "publish -> pure handler -> one role intent -> async role intent handler, 1 subscriber",
        f"{fig['intentd']:,.0f} events/s",
        f"bare loop {fig['floor']:,.0f}/s; pyee {median_ratio(rates['floor'], rates['pyee']):.2f}x"
        f" the floor, blinker {median_ratio(rates['floor'], rates['blinker']):.2f}x",
        slowdown,
        "<= 3x the floor",
        slowdown <= 3,
    )
    quiet = median_ratio(rates["floor"], rates["intentd []"])
    row(
        "same, handler returns []",
        f"{fig['intentd []']:,.0f} events/s",
        f"the intent floor {fig['floor']:,.0f}/s",
        quiet,
        "<= 1.5x the intent floor",
        quiet <= 1.5,
    )
    p99s = await interleave(
        rounds, {"intentd": lambda: bus_latency(20_000), "queue": lambda: queue_latency(20_000)}
    )
    late = median_ratio(p99s["intentd"], p99s["queue"])
    row(
        "publish -> handled latency, one at a time, p99",
        f"{median(p99s['intentd']) * 1e6:.1f} us",
        f"asyncio.Queue bus {median(p99s['queue']) * 1e6:.1f} us",
        late,
        "<= 2x",
        late <= 2,
    )


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        )
    )
