"""A timer is marked fired only once its reminder was delivered, and fires by the wall clock."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from common.context import EventContext
from common.events import TIMER_DELIVERY_FAILING, TIMER_EXPIRED
from common.intent_processor import IntentProcessor
from common.intents import Intent, NotificationIntent
from common.message_bus import MessageBus
from supervisor.config import TimersConfig
from supervisor.scheduling.timers import TimerService
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers
from tests.fakes.clock import START, FakeClock, SteppingClock
from tests.timer_runner import TimerRunner


class FailingComms:
    """A communication manager whose every send fails, as when the outbox cannot be written."""

    async def send(self, intent: NotificationIntent) -> None:
        raise OSError("disk full")


class Daemon:
    """A running bus with no TIMER_EXPIRED subscriber yet, and a timer service over it."""

    def __init__(self, path: Path, clock: FakeClock, comms: Any = None, **config: Any) -> None:
        self.clock = clock
        self.bus = MessageBus(IntentProcessor(comms), clock=clock.time)
        self.bus.intent_processor.message_bus = self.bus  # type: ignore[attr-defined]
        self.bus.start()  # events are handled while the clock advances, as in the daemon
        self.store = Store(path)
        self.timers = TimerService(
            SqliteTimers(self.store), self.bus, clock, TimersConfig(**config)
        )
        self.runner = TimerRunner(self.timers)
        self.seen: list[tuple[float, int]] = []
        self.alerts: list[dict[str, Any]] = []
        self.bus.subscribe("admin", TIMER_DELIVERY_FAILING, lambda d, c: self.alerts.append(d))

    def handle(self, result: Any = None) -> None:
        """Subscribe a timer role that records each attempt and returns ``result``."""

        def expired(data: dict[str, Any], context: EventContext) -> list[Intent]:
            self.seen.append((self.clock.time(), context.attempt))
            if isinstance(result, Exception):
                raise result
            return result or []

        self.bus.subscribe("timer", TIMER_EXPIRED, expired)

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)
        await self.drain()

    async def drain(self) -> None:
        await self.bus.drain()
        await self.timers.settled()
        await self.bus.drain()

    async def state(self, timer_id: str) -> tuple[str, int]:
        timer = await self.timers.get(timer_id)
        assert timer is not None
        return timer.state, timer.attempts


MakeDaemon = Callable[..., Daemon]


@pytest.fixture
async def make_daemon(tmp_path: Path) -> AsyncIterator[MakeDaemon]:
    made: list[Daemon] = []

    def make(clock: FakeClock, comms: Any = None, **config: Any) -> Daemon:
        made.append(Daemon(tmp_path / "intentd.db", clock, comms, **config))
        return made[-1]

    yield make
    for daemon in made:
        await daemon.runner.stop()
        await daemon.bus.stop()
        daemon.store.close()


async def test_a_timer_nobody_handles_stays_pending_and_refires(make_daemon: MakeDaemon) -> None:
    d = make_daemon(FakeClock())
    timer_id = await d.timers.create(duration=5, label="tea")
    with capture_logs() as logs:
        await d.advance(5)
    assert await d.state(timer_id) == ("pending", 1)
    failed = [e for e in logs if e["event"] == "timer_delivery_failed"]
    assert [(e["timer_id"], e["attempt"], e["retry_in_s"]) for e in failed] == [(timer_id, 1, 5.0)]
    d.handle()  # the timer role is loaded again
    await d.advance(4.9)
    assert d.seen == []
    await d.advance(0.1)
    assert d.seen == [(START + 10, 2)]
    assert await d.state(timer_id) == ("fired", 2)


async def test_a_timer_whose_notification_failed_stays_pending(make_daemon: MakeDaemon) -> None:
    d = make_daemon(FakeClock(), FailingComms())
    d.handle([NotificationIntent(message="tea", channel="console")])
    timer_id = await d.timers.create(duration=5, label="tea")
    await d.advance(5)
    assert await d.state(timer_id) == ("pending", 1)


async def test_failed_deliveries_back_off_doubling_up_to_the_cap(make_daemon: MakeDaemon) -> None:
    d = make_daemon(FakeClock(), retry_initial=5, retry_max=30, alert_after_attempts=99)
    d.handle(RuntimeError("role broken mid-edit"))
    timer_id = await d.timers.create(duration=1)
    await d.advance(1 + 5 + 10 + 20 + 30 + 30)
    assert d.seen == [
        (START + 1, 1),
        (START + 6, 2),
        (START + 16, 3),
        (START + 36, 4),
        (START + 66, 5),
        (START + 96, 6),
    ]
    assert await d.state(timer_id) == ("pending", 6)


async def test_the_admin_channel_is_alerted_once_and_retries_go_on(make_daemon: MakeDaemon) -> None:
    d = make_daemon(FakeClock(), retry_initial=1, retry_max=1, alert_after_attempts=3)
    timer_id = await d.timers.create(duration=1, label="tea")
    await d.advance(10)
    assert [(a["timer_id"], a["label"], a["attempts"]) for a in d.alerts] == [(timer_id, "tea", 3)]
    assert await d.state(timer_id) == ("pending", 10)
    d.handle()
    await d.advance(1)
    assert await d.state(timer_id) == ("fired", 11)
    assert len(d.alerts) == 1


async def test_a_cancel_during_backoff_stops_the_retries(make_daemon: MakeDaemon) -> None:
    d = make_daemon(FakeClock())
    timer_id = await d.timers.create(duration=5)
    await d.advance(5)
    await d.timers.cancel(timer_id)
    d.handle()
    await d.advance(600)
    assert d.seen == [] and await d.state(timer_id) == ("cancelled", 1)


async def test_a_wall_clock_set_back_does_not_fire_a_timer_early(make_daemon: MakeDaemon) -> None:
    clock = SteppingClock()
    d = make_daemon(clock)
    d.handle()
    timer_id = await d.timers.create(duration=10)
    clock.step(-100)
    await d.advance(10)  # the scheduler's deadline passes, but the wall clock says START - 90
    assert d.seen == [] and await d.state(timer_id) == ("pending", 0)
    await d.advance(99.9)
    assert d.seen == []
    await d.advance(0.1)
    assert d.seen == [(START + 10, 1)] and await d.state(timer_id) == ("fired", 1)


async def test_reconcile_fires_a_timer_the_scheduler_holds_past_its_deadline(
    make_daemon: MakeDaemon,
) -> None:
    clock = SteppingClock()
    d = make_daemon(clock)
    d.handle()
    timer_id = await d.timers.create(duration=10)
    clock.step(3600)  # a suspend: the wall clock moved on, the scheduler did not
    assert await d.timers.reconcile() == {"pending": 1, "rearmed": 0, "dropped": 0, "overdue": 1}
    await d.drain()
    assert d.seen == [(START + 3600, 1)] and await d.state(timer_id) == ("fired", 1)
    await d.advance(10)
    assert len(d.seen) == 1


async def test_reconcile_leaves_a_timer_within_tolerance_or_in_backoff_alone(
    make_daemon: MakeDaemon,
) -> None:
    clock = SteppingClock()
    d = make_daemon(clock)
    backing_off = await d.timers.create(duration=5)
    await d.advance(5)  # no subscriber: retried at START + 10
    d.handle()
    await d.timers.create(duration=2)
    clock.step(2.5)  # the second timer fell due 0.5 s ago: within tolerance
    assert (await d.timers.reconcile())["overdue"] == 0
    assert d.seen == [] and await d.state(backing_off) == ("pending", 1)
