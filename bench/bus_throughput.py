"""Bus throughput and latency: publish -> one pure handler -> one intent -> IntentProcessor.

Compared, in the same run, with a bare loop that calls the same handler and appends the same
audit record to the same kind of sink directly (no queue, no dispatch, no checks). Prints both
rates, their ratio, and publish->handled latency p50/p99 when the bus is not saturated.
Run: .venv/bin/python bench/bus_throughput.py [events]
"""

import asyncio
import statistics
import sys
import time

from common.audit import AuditRecord, MemoryAuditSink
from common.context import EventContext
from common.intent_processor import IntentProcessor
from common.intents import AuditIntent
from common.message_bus import MessageBus


def handle_order(event_data, context):
    """A pure handler: one intent per event."""
    return [AuditIntent("order_seen", {"order": event_data["order"]}, user_id=context.user_id)]


async def bare_loop(events: int) -> float:
    """Return events/s for calling the handler and recording its intent directly."""
    sink = MemoryAuditSink()
    started = time.perf_counter()
    for n in range(events):
        context = EventContext(f"e{n}", "ORDER_PLACED", "bench", time.time(), None, "U1")
        for intent in handle_order({"order": n}, context):
            await sink.append(
                AuditRecord(
                    intent.action,
                    intent.details,
                    intent.user_id,
                    "bench",
                    intent.intent_id,
                    context.event_id,
                    intent.created_at,
                )
            )
        if n % 1000 == 0:
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    assert len(sink.records) == events
    return events / elapsed


def make_bus() -> tuple[MessageBus, IntentProcessor]:
    processor = IntentProcessor()
    bus = MessageBus(processor, max_queue=10_000_000)
    bus.subscribe("bench", "ORDER_PLACED", handle_order)
    return bus, processor


async def pipeline(events: int) -> float:
    """Return events/s through publish -> dispatcher -> handler -> IntentProcessor."""
    bus, processor = make_bus()
    bus.start()
    started = time.perf_counter()
    for n in range(events):
        bus.publish("bench", "ORDER_PLACED", {"order": n}, user_id="U1")
        if n % 1000 == 999:
            await asyncio.sleep(0)
    await bus.drain()
    elapsed = time.perf_counter() - started
    await bus.stop()
    assert len(processor.audit_sink.records) == events
    return events / elapsed


async def latency(samples: int) -> list[float]:
    """Return publish->handled latencies (seconds), one event in flight at a time."""
    bus, _ = make_bus()
    published: dict[int, float] = {}
    latencies: list[float] = []
    handled = asyncio.Event()

    def timed(event_data, context):
        latencies.append(time.perf_counter() - published[event_data["order"]])
        handled.set()
        return handle_order(event_data, context)

    bus.unsubscribe_role("bench")
    bus.subscribe("bench", "ORDER_PLACED", timed)
    bus.start()
    for n in range(samples):
        handled.clear()
        published[n] = time.perf_counter()
        bus.publish("bench", "ORDER_PLACED", {"order": n}, user_id="U1")
        await handled.wait()
    await bus.stop()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(events: int) -> None:
    bare = max([await bare_loop(events) for _ in range(3)])
    full = max([await pipeline(events) for _ in range(3)])
    lat = await latency(20_000)
    print(f"events per run             {events}")
    print(f"bare loop                  {bare:,.0f} events/s")
    print(f"bus pipeline               {full:,.0f} events/s")
    print(f"pipeline / bare            {full / bare:.2f} (bare is {bare / full:.2f}x faster)")
    print(f"publish->handled p50       {percentile(lat, 0.50) * 1e6:.1f} us")
    print(f"publish->handled p99       {percentile(lat, 0.99) * 1e6:.1f} us")
    print(f"publish->handled mean      {statistics.fmean(lat) * 1e6:.1f} us")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
