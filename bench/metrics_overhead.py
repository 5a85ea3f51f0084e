"""What the handler-duration histogram costs on the bus's hot path, and what a scrape costs.

Publishes the same events through a MessageBus with one trivial subscriber per event type: with no
observer, with our BucketHistogram observer (HandlerDurations), and with a prometheus-client
``Histogram`` observer (cached children) for comparison; prints the rates and ratios measured in
this run, then times rendering /metrics with the counters those events left behind.
"""

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

from common.message_bus import MessageBus
from supervisor.ops.metrics import HANDLER_BUCKETS, HandlerDurations, Metrics, bus_families

EVENTS = 100_000
EVENT_TYPES = [f"EVENT_{n}" for n in range(20)]


def handler(data, context):
    return []


def prometheus_observer():
    histogram = Histogram(
        "bench_seconds",
        "Bench.",
        ["role", "event_type"],
        registry=CollectorRegistry(),
        buckets=HANDLER_BUCKETS,
    )
    children = {}

    def observe(sub, context, seconds, error):
        key = (sub.role, sub.event_type)
        child = children.get(key)
        if child is None:
            child = children[key] = histogram.labels(*key)
        child.observe(seconds)

    return observe


async def rate(mode: str) -> tuple[float, Metrics]:
    metrics = Metrics()
    bus = MessageBus(max_queue=EVENTS + 1)
    for event_type in EVENT_TYPES:
        bus.subscribe("bench", event_type, handler)
    if mode == "buckets":
        durations = HandlerDurations()
        bus.observers.append(durations)
        metrics.add_source("handler_durations", durations.metric_families)
    elif mode == "prometheus":
        bus.observers.append(prometheus_observer())
    metrics.add_source("bus", lambda: bus_families(bus.stats, bus.queue_depth))
    for n in range(EVENTS):
        bus.publish("bench", EVENT_TYPES[n % len(EVENT_TYPES)], {"n": n})
    started = time.perf_counter()
    await bus.drain()
    return EVENTS / (time.perf_counter() - started), metrics


async def main() -> None:
    best: dict[str, float] = {}
    for _ in range(3):
        for mode in ("none", "buckets", "prometheus"):
            measured, metrics = await rate(mode)
            best[mode] = max(best.get(mode, 0.0), measured)
            if mode == "buckets":
                scraped = metrics
    started = time.perf_counter()
    for _ in range(100):
        body = scraped.render()
    scrape_ms = (time.perf_counter() - started) * 10
    plain = best["none"]
    print(f"dispatch, no observer              {plain:,.0f} events/s")
    for mode, label in (("buckets", "BucketHistogram"), ("prometheus", "prometheus Histogram")):
        print(f"dispatch, {label:<25}{best[mode]:,.0f} events/s ({plain / best[mode]:.2f}x slower)")
    print(f"scrape ({len(body):,} bytes, {len(EVENT_TYPES)} event types)  {scrape_ms:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
