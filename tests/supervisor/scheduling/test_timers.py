"""The timer service with a fake clock: deadlines, cancel, list, restarts and crashes."""

from pathlib import Path
from typing import Any

import pytest

from common.context import EventContext
from common.errors import TimerError
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from supervisor.scheduling.bus_retry import RETRY_DELAY
from supervisor.scheduling.timers import TimerService
from supervisor.store.sqlite import Store
from tests.fakes.clock import START, FakeClock


class Daemon:
    """The parts a timer needs, over one database file: a stand-in for one daemon run."""

    def __init__(self, path: Path, clock: FakeClock, *, max_queue: int = 10_000) -> None:
        self.clock = clock
        self.store = Store(path)
        self.bus = MessageBus(IntentProcessor(), clock=clock.time, max_queue=max_queue)
        self.fired: list[dict[str, Any]] = []
        self.attempts: list[int] = []
        self.bus.subscribe("test", "TIMER_EXPIRED", self._record)
        self.timers = TimerService(self.store, self.bus, clock)

    def _record(self, data: dict[str, Any], context: EventContext) -> list[Any]:
        self.fired.append(data)
        self.attempts.append(context.attempt)
        return []

    def crash(self) -> None:
        """Drop everything in memory without finishing the queued events."""
        self.timers.stop()
        self.store.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "intentd.db"


@pytest.fixture
def daemon(db_path: Path) -> Daemon:
    d = Daemon(db_path, FakeClock())
    d.timers.start()
    return d


async def test_timer_fires_at_its_deadline(daemon: Daemon) -> None:
    timer_id = daemon.timers.create(duration=60, label="tea", channel_id="C1", user_id="U1")
    await daemon.clock.advance(59.9)
    await daemon.bus.drain()
    assert daemon.fired == []
    await daemon.clock.advance(0.1)
    await daemon.bus.drain()
    assert daemon.fired == [
        {
            "timer_id": timer_id,
            "label": "tea",
            "original_request": None,
            "channel_id": "C1",
            "user_id": "U1",
            "due_at": START + 60,
            "fired_at": START + 60,
            "late_by_s": 0.0,
            "attempt": 1,
            "data": {},
        }
    ]


async def test_timer_is_marked_fired_only_after_its_event_was_processed(daemon: Daemon) -> None:
    timer_id = daemon.timers.create(duration=5)
    await daemon.clock.advance(5)
    assert daemon.timers.get(timer_id).state == "pending"  # type: ignore[union-attr]
    await daemon.bus.drain()
    timer = daemon.timers.get(timer_id)
    assert (timer.state, timer.fired_at, timer.attempts) == ("fired", START + 5, 1)  # type: ignore[union-attr]


async def test_timer_with_absolute_deadline_fires_then(daemon: Daemon) -> None:
    daemon.timers.create(deadline=START + 3600, label="hourly")
    await daemon.clock.advance(3600)
    await daemon.bus.drain()
    assert [f["label"] for f in daemon.fired] == ["hourly"]


async def test_cancelled_timer_never_fires(daemon: Daemon) -> None:
    timer_id = daemon.timers.create(duration=10, label="tea")
    cancelled = daemon.timers.cancel(timer_id)
    await daemon.clock.advance(20)
    await daemon.bus.drain()
    assert (cancelled.state, cancelled.cancelled_at, daemon.fired) == ("cancelled", START, [])


async def test_cancelling_twice_is_a_clear_error(daemon: Daemon) -> None:
    timer_id = daemon.timers.create(duration=10, label="tea")
    daemon.timers.cancel(timer_id)
    with pytest.raises(TimerError, match=r"'tea'.*already been cancelled"):
        daemon.timers.cancel(timer_id)


async def test_cancelling_a_fired_timer_is_a_clear_error(daemon: Daemon) -> None:
    timer_id = daemon.timers.create(duration=10, label="tea")
    await daemon.clock.advance(10)
    with pytest.raises(TimerError, match="already fired"):
        daemon.timers.cancel(timer_id)  # fired, its event not yet processed
    await daemon.bus.drain()
    with pytest.raises(TimerError, match="already fired"):
        daemon.timers.cancel(timer_id)


async def test_cancelling_an_unknown_timer_is_a_clear_error(daemon: Daemon) -> None:
    with pytest.raises(TimerError, match="no timer has id 'tmr-nope'"):
        daemon.timers.cancel("tmr-nope")


async def test_list_returns_pending_timers_by_deadline(daemon: Daemon) -> None:
    late = daemon.timers.create(duration=300, label="late", user_id="U1")
    early = daemon.timers.create(duration=60, label="early", user_id="U2")
    gone = daemon.timers.create(duration=120, label="gone", user_id="U1")
    daemon.timers.cancel(gone)
    assert [t.timer_id for t in daemon.timers.list()] == [early, late]
    assert [t.timer_id for t in daemon.timers.list(user_id="U1")] == [late]
    assert [t.timer_id for t in daemon.timers.list(include_done=True)] == [early, gone, late]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of deadline or duration"),
        ({"duration": 5, "deadline": START + 5}, "exactly one of deadline or duration"),
        ({"duration": 0}, "must be due after now"),
        ({"deadline": START - 1}, "must be due after now"),
        ({"duration": 400 * 86400}, "within 365 days"),
    ],
)
async def test_invalid_timer_is_refused_and_nothing_is_stored(
    daemon: Daemon, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TimerError, match=message):
        daemon.timers.create(label="x", **kwargs)
    assert daemon.timers.list(include_done=True) == []


async def test_restart_with_pending_timers_fires_each_once(db_path: Path) -> None:
    clock = FakeClock()
    first = Daemon(db_path, clock)
    ids = [first.timers.create(duration=d, label=f"t{d}") for d in (10, 20, 30)]
    first.crash()
    second = Daemon(db_path, clock)
    assert second.timers.start() == 3
    await clock.advance(60)
    await second.bus.drain()
    assert [f["timer_id"] for f in second.fired] == ids
    assert second.attempts == [1, 1, 1]
    assert second.timers.list() == []


async def test_overdue_timer_fires_once_at_once_after_restart_with_real_lateness(
    db_path: Path,
) -> None:
    first = Daemon(db_path, FakeClock())
    timer_id = first.timers.create(duration=60, label="tea")
    first.crash()
    later = FakeClock(START + 600)  # the daemon was down for ten minutes
    second = Daemon(db_path, later)
    second.timers.start()
    await later.advance(0)
    await second.bus.drain()
    await later.advance(3600)
    await second.bus.drain()
    assert [(f["timer_id"], f["late_by_s"], f["fired_at"]) for f in second.fired] == [
        (timer_id, 540.0, START + 600)
    ]


async def test_crash_between_firing_and_processing_fires_again_with_attempt_2(
    db_path: Path,
) -> None:
    clock = FakeClock()
    first = Daemon(db_path, clock)
    timer_id = first.timers.create(duration=5, label="tea")
    await clock.advance(5)  # TIMER_EXPIRED is queued but never processed
    first.crash()
    second = Daemon(db_path, clock)
    second.timers.start()
    await clock.advance(0)
    await second.bus.drain()
    assert [(f["timer_id"], f["attempt"]) for f in second.fired] == [(timer_id, 2)]
    assert second.attempts == [2]
    second.crash()
    third = Daemon(db_path, clock)
    assert third.timers.start() == 0


async def test_many_timers_with_the_same_deadline_each_fire_once(daemon: Daemon) -> None:
    ids = [daemon.timers.create(deadline=START + 30, label=str(i)) for i in range(500)]
    await daemon.clock.advance(30)
    await daemon.bus.drain()
    assert sorted(f["timer_id"] for f in daemon.fired) == sorted(ids)
    assert len(daemon.fired) == 500 and daemon.timers.list() == []


async def test_a_full_bus_defers_the_timer_instead_of_dropping_it(db_path: Path) -> None:
    d = Daemon(db_path, FakeClock(), max_queue=1)
    d.timers.start()
    d.bus.publish("test", "HEARTBEAT_TICK", {})  # fills the queue
    timer_id = d.timers.create(duration=5)
    await d.clock.advance(5)
    assert d.fired == [] and d.timers.get(timer_id).attempts == 0  # type: ignore[union-attr]
    await d.bus.drain()
    await d.clock.advance(RETRY_DELAY)
    await d.bus.drain()
    assert [f["timer_id"] for f in d.fired] == [timer_id]


async def test_reconcile_arms_a_timer_the_scheduler_does_not_know(daemon: Daemon) -> None:
    timer_id = daemon.timers.create(duration=5)
    daemon.timers.stop()  # as if the handle had been lost
    assert daemon.timers.reconcile() == {"pending": 1, "rearmed": 1, "dropped": 0, "overdue": 0}
    await daemon.clock.advance(5)
    await daemon.bus.drain()
    assert [f["timer_id"] for f in daemon.fired] == [timer_id]


async def test_reconcile_drops_a_handle_whose_timer_is_no_longer_pending(daemon: Daemon) -> None:
    timer_id = daemon.timers.create(duration=5)
    with daemon.store.transaction() as db:
        db.execute("UPDATE timers SET state = 'cancelled' WHERE timer_id = ?", (timer_id,))
    assert daemon.timers.reconcile() == {"pending": 0, "rearmed": 0, "dropped": 1, "overdue": 0}
    assert daemon.clock.pending == 0


async def test_reconcile_of_a_consistent_service_changes_nothing(daemon: Daemon) -> None:
    daemon.timers.create(duration=5)
    assert daemon.timers.reconcile() == {"pending": 1, "rearmed": 0, "dropped": 0, "overdue": 0}


async def test_a_service_that_does_not_arm_stores_timers_and_leaves_them_pending(
    db_path: Path,
) -> None:
    idle = Daemon(db_path, FakeClock())
    idle.timers = TimerService(idle.store, idle.bus, idle.clock, arms=False)  # `intentd call`
    idle.timers.start()
    timer_id = idle.timers.create(duration=60, label="tea")
    assert (idle.clock.pending, idle.timers.reconcile()) == (
        0,
        {"pending": 1, "rearmed": 0, "dropped": 0, "overdue": 0},
    )
    await idle.clock.advance(120)
    assert idle.fired == [] and idle.timers.get(timer_id).state == "pending"
