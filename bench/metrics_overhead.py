"""What the handler-duration histogram costs on the bus's hot path, and what a scrape costs.

Publishes the same events through a MessageBus with one trivial subscriber, with and without the
HandlerDurations observer, and prints both rates and their ratio measured in this run; then times
rendering /metrics with the counters those events left behind.
"""

import asyncio
import time

from common.message_bus import MessageBus
from supervisor.metrics import HandlerDurations, Metrics, bus_families

EVENTS = 100_000
EVENT_TYPES = [f"EVENT_{n}" for n in range(20)]


def handler(data, context):
    return None


async def rate(observed: bool) -> tuple[float, Metrics]:
    metrics = Metrics()
    bus = MessageBus(max_queue=EVENTS + 1)
    for event_type in EVENT_TYPES:
        bus.subscribe("bench", event_type, handler)
    if observed:
        durations = HandlerDurations()
        bus.observers.append(durations)
        metrics.add_source("handler_durations", durations.metric_families)
    metrics.add_source("bus", lambda: bus_families(bus.stats, bus.queue_depth))
    for n in range(EVENTS):
        bus.publish("bench", EVENT_TYPES[n % len(EVENT_TYPES)], {"n": n})
    started = time.perf_counter()
    await bus.drain()
    return EVENTS / (time.perf_counter() - started), metrics


async def main() -> None:
    plain = max([(await rate(False))[0] for _ in range(3)])
    results = [await rate(True) for _ in range(3)]
    observed = max(r for r, _ in results)
    metrics = results[-1][1]
    started = time.perf_counter()
    for _ in range(100):
        body = metrics.render()
    scrape_ms = (time.perf_counter() - started) * 10
    print(f"dispatch without histogram  {plain:,.0f} events/s")
    print(f"dispatch with histogram     {observed:,.0f} events/s ({plain / observed:.2f}x slower)")
    print(f"scrape ({len(body):,} bytes, {len(EVENT_TYPES)} event types)  {scrape_ms:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
