"""Timer rows: lateness, creation cost and memory per pending timer, each beside its anchors.

- lateness p99 of 10,000 timers spread over 5 s: durable timers (SQLite store, the bus, a
  TIMER_EXPIRED handler; lateness read in the handler) against bare ``loop.call_at`` callbacks and
  APScheduler's AsyncIOScheduler (date jobs, an async job function, run on the loop), with the
  CPU time each fired timer cost intentd and ``call_at``;
- creation: ``TimerService.create`` (committed to disk) against APScheduler's ``add_job`` (memory);
- memory held per pending timer (tracemalloc): the armed service against ``loop.call_at`` handles
  and APScheduler jobs.
Run: .venv/bin/python bench/timers.py [rounds]
"""

import asyncio
import gc
import logging
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import structlog
from _rounds import interleave, median, median_ratio, percentile, row
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from common.clock import SystemClock
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from supervisor.scheduling.timers import TimerService
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers

TIMERS = 10_000
SPREAD_S = 5.0
LEAD_S = 2.0  # time to create them all before the first is due
HELD = 10_000


def deadlines() -> list[float]:
    start = time.time() + LEAD_S
    return [start + SPREAD_S * i / TIMERS for i in range(TIMERS)]


async def call_at_lateness() -> float:
    loop = asyncio.get_running_loop()
    late: list[float] = []
    done = loop.create_future()

    def fire(due: float) -> None:
        late.append(time.time() - due)
        if len(late) == TIMERS:
            done.set_result(None)

    for due in deadlines():
        loop.call_at(loop.time() + (due - time.time()), fire, due)
    cpu = time.process_time()
    await done
    Fired.call_at.append((time.process_time() - cpu) / TIMERS)
    return percentile(late, 0.99)


class Created:
    """Per-timer creation times of the last run of each scheduler."""

    intentd: ClassVar[list[float]] = []
    apscheduler: ClassVar[list[float]] = []


class Fired:
    """CPU seconds per fired timer, from the first creation done to the last handled."""

    intentd: ClassVar[list[float]] = []
    call_at: ClassVar[list[float]] = []


async def intentd_lateness(folder: Path) -> float:
    store = Store(folder / f"timers-{time.perf_counter_ns()}.db")
    bus = MessageBus(IntentProcessor())
    service = TimerService(SqliteTimers(store), bus, SystemClock())
    runner = asyncio.get_running_loop().create_task(service.run())
    late: list[float] = []
    done = asyncio.get_running_loop().create_future()

    def on_expiry(data: dict[str, Any], context: Any) -> list[Any]:
        late.append(time.time() - data["due_at"])
        if len(late) == TIMERS:
            done.set_result(None)
        return []

    bus.subscribe("bench", "TIMER_EXPIRED", on_expiry)
    bus.start()
    started = time.perf_counter()
    for due in deadlines():
        await service.create(deadline=due, label="tea")
    Created.intentd.append((time.perf_counter() - started) / TIMERS)
    cpu = time.process_time()
    await asyncio.wait_for(done, SPREAD_S + LEAD_S + 60)
    await service.settled()
    Fired.intentd.append((time.process_time() - cpu) / TIMERS)
    await bus.stop()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    service.stop()
    store.close()
    return percentile(late, 0.99)


async def apscheduler_lateness() -> float:
    late: list[float] = []
    done = asyncio.get_running_loop().create_future()

    async def fire(due: float) -> None:
        late.append(time.time() - due)
        if len(late) == TIMERS:
            done.set_result(None)

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    started = time.perf_counter()
    for due in deadlines():
        when = datetime.fromtimestamp(due, UTC)
        scheduler.add_job(fire, "date", run_date=when, args=[due], misfire_grace_time=None)
    Created.apscheduler.append((time.perf_counter() - started) / TIMERS)
    await asyncio.wait_for(done, SPREAD_S + LEAD_S + 60)
    scheduler.shutdown(wait=False)
    return percentile(late, 0.99)


async def held(make: Any) -> float:
    """Return bytes held per pending timer by what ``make(count)`` keeps alive."""
    gc.collect()
    tracemalloc.start()
    keep = await make(HELD)
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del keep
    return used / HELD


async def memory(folder: Path) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    far = time.time() + 3600

    async def call_at(count: int) -> list[asyncio.TimerHandle]:
        return [loop.call_at(loop.time() + 3600 + i, print, far + i) for i in range(count)]

    store = Store(folder / "held.db")
    seed = TimerService(SqliteTimers(store), MessageBus(), SystemClock(), arms=False)
    for i in range(HELD):
        await seed.create(deadline=far + i, label="tea")

    async def intentd(count: int) -> TimerService:
        service = TimerService(SqliteTimers(store), MessageBus(), SystemClock())
        assert await service.start() == count
        return service

    async def apscheduler(count: int) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.start(paused=True)
        for i in range(count):
            when = datetime.fromtimestamp(far + i, UTC)
            scheduler.add_job(print, "date", run_date=when, args=[far + i])
        return scheduler

    return {
        "call_at": await held(call_at),
        "intentd": await held(intentd),
        "apscheduler": await held(apscheduler),
    }


async def main(rounds: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        p99 = await interleave(
            rounds,
            {
                "call_at": call_at_lateness,
                "intentd": lambda: intentd_lateness(folder),
                "apscheduler": apscheduler_lateness,
            },
        )
        held_bytes = await memory(folder)
    late = median_ratio(p99["intentd"], p99["call_at"])
    row(
        f"timer lateness p99, {TIMERS:,} timers over {SPREAD_S:.0f} s",
        f"{median(p99['intentd']) * 1e3:.2f} ms (durable, read in the TIMER_EXPIRED handler)",
        f"loop.call_at {median(p99['call_at']) * 1e3:.2f} ms; "
        f"APScheduler {median(p99['apscheduler']) * 1e3:.2f} ms",
        late,
        "<= 1.5x call_at",
        late <= 1.5,
    )
    print(
        f"  CPU per fired timer: intentd {median(Fired.intentd) * 1e6:.0f} us (claim, publish, "
        f"handler, fired mark), loop.call_at {median(Fired.call_at) * 1e6:.0f} us",
        flush=True,
    )
    create = median_ratio(Created.intentd, Created.apscheduler)
    row(
        "timer creation",
        f"{median(Created.intentd) * 1e6:.0f} us (committed to disk)",
        f"APScheduler add_job {median(Created.apscheduler) * 1e6:.0f} us (in memory)",
        create,
        "<= 0.5x",
        create <= 0.5,
    )
    mem = held_bytes["intentd"] / held_bytes["call_at"]
    row(
        "memory per pending timer",
        f"{held_bytes['intentd']:.0f} B",
        f"call_at {held_bytes['call_at']:.0f} B; APScheduler {held_bytes['apscheduler']:.0f} B",
        mem,
        "<= 1.5x call_at",
        mem <= 1.5,
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
