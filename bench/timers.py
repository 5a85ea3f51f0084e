"""Timer lateness on the real loop, re-arm cost at start, and durable audit append rates.

Run: .venv/bin/python bench/timers.py   (prints figures; no thresholds)
"""

import asyncio
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog

from common.audit import AuditRecord
from common.clock import SystemClock
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from supervisor.scheduling.timers import TimerService
from supervisor.store.audit import DurableAuditSink, SqliteAudit
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers

LATENESS_TIMERS = 10_000
SPREAD_S = 5.0
REARM_TIMERS = 100_000


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def ms(values: list[float]) -> str:
    p50, worst = statistics.median(values), max(values)
    return f"p50 {p50 * 1e3:6.2f} ms  p99 {p99(values) * 1e3:6.2f} ms  max {worst * 1e3:6.2f} ms"


async def bare_call_at_lateness() -> list[float]:
    """Baseline: the same deadlines as bare loop.call_at callbacks."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    done = loop.create_future()
    start = time.time() + 0.2

    def fire(due: float) -> None:
        late.append(time.time() - due)
        if len(late) == LATENESS_TIMERS:
            done.set_result(None)

    for i in range(LATENESS_TIMERS):
        due = start + SPREAD_S * i / LATENESS_TIMERS
        loop.call_at(loop.time() + (due - time.time()), fire, due)
    await done
    return late


async def timer_service_lateness(folder: Path) -> tuple[list[float], list[float]]:
    """Durable timers through the service and the bus, to a TIMER_EXPIRED handler."""
    store = Store(folder / "lateness.db")
    bus = MessageBus(IntentProcessor())
    service = TimerService(SqliteTimers(store), bus, SystemClock())
    runner = asyncio.get_running_loop().create_task(service.run())
    fired: list[float] = []
    handled: list[float] = []
    all_handled = asyncio.Event()

    def on_expiry(data: dict[str, Any], context: Any) -> list[Any]:
        handled.append(time.time() - data["due_at"])
        fired.append(data["late_by_s"])
        if len(handled) == LATENESS_TIMERS:
            all_handled.set()
        return []

    bus.subscribe("bench", "TIMER_EXPIRED", on_expiry)
    bus.start()
    start = time.time() + 5.0  # leave time to create them all (2,000/s on a loaded machine)
    wall_offset = time.time() - time.monotonic()  # a step of the wall clock shows as a change
    created = time.perf_counter()
    for i in range(LATENESS_TIMERS):
        await service.create(deadline=start + SPREAD_S * i / LATENESS_TIMERS, label=str(i))
    created = time.perf_counter() - created
    rate = LATENESS_TIMERS / created
    print(f"  create (one commit each)        {rate:,.0f} timers/s", flush=True)
    try:
        await asyncio.wait_for(all_handled.wait(), timeout=SPREAD_S + 60)
    except TimeoutError:
        print(
            f"  TIMED OUT: handled {len(handled):,} of {LATENESS_TIMERS:,}; pending "
            f"{service.pending_count():,}, armed {len(service._armed):,}, retry_at "
            f"{len(service._retry_at):,}, in flight {len(service._in_flight):,}, "
            f"bus queue {bus.queue_depth:,}, wall clock stepped by "
            f"{time.time() - time.monotonic() - wall_offset:+.3f} s",
            flush=True,
        )
        raise
    await bus.stop()
    await service.settled()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    pending = len(await service.list())
    store.close()
    assert pending == 0, f"{pending} timers still pending"
    return fired, handled


def seed(path: Path, count: int) -> None:
    store = Store(path)
    SqliteTimers(store)  # creates the table
    due = time.time() + 3600
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO timers (timer_id, label, due_at, created_at) VALUES (?, ?, ?, ?)",
            ((f"tmr-bench-{i}", f"t{i}", due + i * 0.01, due - 3600) for i in range(count)),
        )
    store.close()


async def rearm(path: Path) -> tuple[float, int, int]:
    """Return seconds to open the store and arm every pending timer, and memory (current, peak)."""
    gc.collect()
    started = time.perf_counter()
    store = Store(path)
    service = TimerService(SqliteTimers(store), MessageBus(), SystemClock())
    armed = await service.start()
    elapsed = time.perf_counter() - started
    assert armed == REARM_TIMERS
    service.stop()
    store.close()
    gc.collect()
    tracemalloc.start()
    store = Store(path)
    service = TimerService(SqliteTimers(store), MessageBus(), SystemClock())
    await service.start()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    service.stop()
    store.close()
    return elapsed, current, peak


async def audit_rates(folder: Path, synchronous: str) -> tuple[float, float]:
    record = AuditRecord(
        "timer_expired",
        {"timer_id": "tmr-1", "label": "tea" * 10},
        "U1",
        "timer",
        "int-1",
        "evt-1",
        datetime.now(UTC),
    )
    backend = SqliteAudit(Store(folder / f"audit-{synchronous}.db", synchronous=synchronous))
    sink = DurableAuditSink(backend)
    single = 5_000
    started = time.perf_counter()
    for _ in range(single):
        await sink.append(record)
    one_by_one = single / (time.perf_counter() - started)
    batches, size = 500, 100
    started = time.perf_counter()
    for _ in range(batches):
        await sink.append_many([record] * size)
    batched = batches * size / (time.perf_counter() - started)
    backend.store.close()
    return one_by_one, batched


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"timer lateness, {LATENESS_TIMERS:,} timers spread over {SPREAD_S:.0f} s:")
        bare = await bare_call_at_lateness()
        print(f"  bare loop.call_at               {ms(bare)}")
        fired, handled = await timer_service_lateness(folder)
        print(f"  TimerService, at fire (late_by) {ms(fired)}")
        print(f"  TimerService, in the handler    {ms(handled)}")
        ratio = p99(handled) / p99(bare)
        print(f"  handler p99 / bare call_at p99  {ratio:.1f}x  (a 5 s poller: p99 ~5 s)")

        seed(folder / "rearm.db", REARM_TIMERS)
        elapsed, current, peak = await rearm(folder / "rearm.db")
        print(
            f"re-arm {REARM_TIMERS:,} pending timers at start: {elapsed:.3f} s, "
            f"{current / REARM_TIMERS:.0f} B per armed timer held, peak {peak / 2**20:.1f} MiB"
        )

        for synchronous in ("NORMAL", "FULL"):
            one, many = await audit_rates(folder, synchronous)
            print(
                f"audit append, synchronous={synchronous:<6}: one commit per record "
                f"{one:9,.0f} records/s; 100 per commit {many:9,.0f} records/s "
                f"({many / one:.1f}x)"
            )


if __name__ == "__main__":
    asyncio.run(main())
