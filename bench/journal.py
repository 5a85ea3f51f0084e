"""The durable event path beside the in-memory one and a bare aiohttp server, in the same run.

1. Bus throughput: events published straight onto the bus (the in-memory path) against events
   submitted to the journal, group-committed, claimed and dispatched (the durable path), through
   the same pure handler and intent, until every one is handled (and, durable, marked done).
2. HTTP ingest: POST /events answered 202 by a bare aiohttp handler (parse JSON, answer), by
   publishing onto the bus, and by committing to the journal first; 50 requests in flight from
   a client on the same loop, timed until every event is handled.
Each round runs every contender once, in turn; the ratios are medians of per-round ratios.
Run: .venv/bin/python bench/journal.py [events] [rounds]
"""

import asyncio
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import aiohttp
from _rounds import interleave, median, median_ratio
from aiohttp import web

from common.clock import SystemClock
from common.intent_processor import IntentProcessor
from common.intents import AuditIntent
from common.message_bus import MessageBus
from supervisor.config import JournalConfig
from supervisor.event_intake import EventIntake
from supervisor.store.journal import SqliteJournal
from supervisor.store.sqlite import Store

CONCURRENCY = 50
HTTP_MODES = ("bare", "memory", "durable")


def handle_order(event_data, context):
    """A pure handler: one intent per event."""
    return [AuditIntent("order_seen", {"order": event_data["order"]})]


class Pipeline:
    """A bus with one subscriber, optionally fed through the journal in a fresh store."""

    def __init__(self, folder: Path, durable: bool) -> None:
        self.processor = IntentProcessor()
        self.bus = MessageBus(self.processor, max_queue=10_000_000)
        self.bus.subscribe("bench", "ORDER_PLACED", handle_order)
        self.store = Store(folder / f"bench-{time.monotonic_ns()}.db") if durable else None
        self.intake = (
            EventIntake(SqliteJournal(self.store), self.bus, SystemClock(), JournalConfig())
            if self.store is not None
            else None
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> "Pipeline":
        self._tasks.append(asyncio.create_task(self.bus.run()))
        if self.intake is not None:
            await self.intake.start()
            self._tasks.append(asyncio.create_task(self.intake.run()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.intake is not None:
            await self.intake.shutdown()
        if self.store is not None:
            self.store.close()

    async def accept(self, data: dict) -> str:
        if self.intake is None:
            return self.bus.publish("bench", "ORDER_PLACED", data, source="http")
        return (await self.intake.accept("bench", "ORDER_PLACED", data, source="http")).event_id

    async def settle(self) -> None:
        if self.intake is not None:
            await self.intake.drain()
        await self.bus.drain()
        if self.intake is not None:
            await self.intake.drain()

    @property
    def handled(self) -> int:
        return len(self.processor.audit_sink.records)


async def bus_rate(folder: Path, events: int, durable: bool) -> float:
    """Return events/s from publish (or journal submit) to handled, and marked done if durable."""
    async with Pipeline(folder, durable) as pipe:
        started = time.perf_counter()
        for n in range(events):
            if pipe.intake is None:
                pipe.bus.publish("bench", "ORDER_PLACED", {"order": n})
            else:
                pipe.intake.submit("bench", "ORDER_PLACED", {"order": n})
            if n % 1000 == 999:
                await asyncio.sleep(0)
        await pipe.settle()
        elapsed = time.perf_counter() - started
        assert pipe.handled == events
        if pipe.intake is not None:
            assert (await pipe.intake.refresh()).backlog == 0
    return events / elapsed


async def http_rate(folder: Path, events: int, mode: str) -> float:
    """Return events/s over HTTP for ``mode`` bare, memory or durable."""
    pipe = Pipeline(folder, durable=mode == "durable") if mode != "bare" else None
    seen = 0

    async def post_event(request: web.Request) -> web.Response:
        nonlocal seen
        data = json.loads(await request.read())
        if pipe is None:
            seen += 1
            event_id = f"evt-{seen}"
        else:
            event_id = await pipe.accept(data)
        return web.json_response({"event_id": event_id}, status=202)

    app = web.Application()
    app.router.add_post("/events/{event_type}", post_event)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/events/ORDER_PLACED"
    if pipe is not None:
        await pipe.__aenter__()
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY)
        ) as session:
            queue = iter(range(events))

            async def client() -> None:
                for n in queue:
                    async with session.post(url, json={"order": n}) as response:
                        assert response.status == 202

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
            if pipe is not None:
                await pipe.settle()
            elapsed = time.perf_counter() - started
        assert (pipe.handled if pipe is not None else seen) == events
    finally:
        if pipe is not None:
            await pipe.__aexit__()
        await runner.cleanup()
    return events / elapsed


async def main(events: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        bus = await interleave(
            rounds,
            {
                "memory": lambda: bus_rate(folder, events, durable=False),
                "durable": lambda: bus_rate(folder, events, durable=True),
            },
        )
        posts = max(events // 20, 2000)
        http = await interleave(
            rounds, {mode: partial(http_rate, folder, posts, mode) for mode in HTTP_MODES}
        )
    print(f"bus events per round          {events} ({rounds} interleaved rounds, medians)")
    print(f"bus, in memory                {median(bus['memory']):,.0f} events/s")
    print(f"bus, through the journal      {median(bus['durable']):,.0f} events/s")
    print(f"journal / in memory           {median_ratio(bus['durable'], bus['memory']):.2f}")
    print(f"HTTP posts per round          {posts} ({CONCURRENCY} in flight)")
    print(f"HTTP, bare aiohttp            {median(http['bare']):,.0f} events/s")
    print(f"HTTP, bus in memory           {median(http['memory']):,.0f} events/s")
    print(f"HTTP, journal                 {median(http['durable']):,.0f} events/s")
    print(f"HTTP journal / in memory      {median_ratio(http['durable'], http['memory']):.2f}")
    print(f"HTTP journal / bare aiohttp   {median_ratio(http['durable'], http['bare']):.2f}")


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 5,
        )
    )
