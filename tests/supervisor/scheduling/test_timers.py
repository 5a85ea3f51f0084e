"""The timer service with a fake clock: deadlines, cancel, list, restarts and crashes."""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from common.context import EventContext
from common.errors import TimerError
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from supervisor.config import TimersConfig
from supervisor.scheduling.bus_retry import RETRY_DELAY
from supervisor.scheduling.timers import TimerService
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers
from tests.fakes.clock import START, FakeClock, settle


class Daemon:
    """The parts a timer needs, over one database file: a stand-in for one daemon run."""

    def __init__(
        self,
        path: Path,
        clock: FakeClock,
        *,
        max_queue: int = 10_000,
        arms: bool = True,
        backend: Callable[[Store], SqliteTimers] = SqliteTimers,
    ) -> None:
        self.clock = clock
        self.store = Store(path)
        self.bus = MessageBus(IntentProcessor(), clock=clock.time, max_queue=max_queue)
        self.fired: list[dict[str, Any]] = []
        self.attempts: list[int] = []
        self.bus.subscribe("test", "TIMER_EXPIRED", self._record)
        self.timers = TimerService(backend(self.store), self.bus, clock, arms=arms)
        self.task = asyncio.get_running_loop().create_task(self.timers.run())

    def _record(self, data: dict[str, Any], context: EventContext) -> list[Any]:
        self.fired.append(data)
        self.attempts.append(context.attempt)
        return []

    async def drain(self) -> None:
        """Return once the bus and the timer service's store steps are both idle."""
        await self.bus.drain()
        await self.timers.settled()
        await self.bus.drain()

    async def crash(self) -> None:
        """Drop everything in memory without finishing the queued events."""
        self.timers.stop()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.store.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "intentd.db"


@pytest.fixture
async def daemon(db_path: Path) -> AsyncIterator[Daemon]:
    d = Daemon(db_path, FakeClock())
    await d.timers.start()
    yield d
    await d.crash()


async def test_timer_fires_at_its_deadline(daemon: Daemon) -> None:
    timer_id = await daemon.timers.create(duration=60, label="tea", channel_id="C1", user_id="U1")
    await daemon.clock.advance(59.9)
    await daemon.drain()
    assert daemon.fired == []
    await daemon.clock.advance(0.1)
    await daemon.drain()
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
    timer_id = await daemon.timers.create(duration=5)
    await daemon.clock.advance(5)
    assert (await daemon.timers.get(timer_id)).state == "pending"  # type: ignore[union-attr]
    await daemon.drain()
    timer = await daemon.timers.get(timer_id)
    assert (timer.state, timer.fired_at, timer.attempts) == ("fired", START + 5, 1)  # type: ignore[union-attr]


async def test_timer_with_absolute_deadline_fires_then(daemon: Daemon) -> None:
    await daemon.timers.create(deadline=START + 3600, label="hourly")
    await daemon.clock.advance(3600)
    await daemon.drain()
    assert [f["label"] for f in daemon.fired] == ["hourly"]


async def test_cancelled_timer_never_fires(daemon: Daemon) -> None:
    timer_id = await daemon.timers.create(duration=10, label="tea")
    cancelled = await daemon.timers.cancel(timer_id)
    await daemon.clock.advance(20)
    await daemon.drain()
    assert (cancelled.state, cancelled.cancelled_at, daemon.fired) == ("cancelled", START, [])


async def test_cancelling_twice_is_a_clear_error(daemon: Daemon) -> None:
    timer_id = await daemon.timers.create(duration=10, label="tea")
    await daemon.timers.cancel(timer_id)
    with pytest.raises(TimerError, match=r"'tea'.*already been cancelled"):
        await daemon.timers.cancel(timer_id)


async def test_cancelling_a_fired_timer_is_a_clear_error(daemon: Daemon) -> None:
    timer_id = await daemon.timers.create(duration=10, label="tea")
    await daemon.clock.advance(10)
    with pytest.raises(TimerError, match="it is firing now"):
        await daemon.timers.cancel(timer_id)  # fired, its event not yet processed
    await daemon.drain()
    with pytest.raises(TimerError, match="already fired"):
        await daemon.timers.cancel(timer_id)


async def test_cancelling_an_unknown_timer_is_a_clear_error(daemon: Daemon) -> None:
    with pytest.raises(TimerError, match="no timer has id 'tmr-nope'"):
        await daemon.timers.cancel("tmr-nope")


async def test_list_returns_pending_timers_by_deadline(daemon: Daemon) -> None:
    late = await daemon.timers.create(duration=300, label="late", user_id="U1")
    early = await daemon.timers.create(duration=60, label="early", user_id="U2")
    gone = await daemon.timers.create(duration=120, label="gone", user_id="U1")
    await daemon.timers.cancel(gone)
    assert [t.timer_id for t in await daemon.timers.list()] == [early, late]
    assert [t.timer_id for t in await daemon.timers.list(user_id="U1")] == [late]
    assert [t.timer_id for t in await daemon.timers.list(include_done=True)] == [early, gone, late]


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
        await daemon.timers.create(label="x", **kwargs)
    assert await daemon.timers.list(include_done=True) == []


async def test_restart_with_pending_timers_fires_each_once(db_path: Path) -> None:
    clock = FakeClock()
    first = Daemon(db_path, clock)
    ids = [await first.timers.create(duration=d, label=f"t{d}") for d in (10, 20, 30)]
    await first.crash()
    second = Daemon(db_path, clock)
    assert await second.timers.start() == 3
    await clock.advance(60)
    await second.drain()
    assert [f["timer_id"] for f in second.fired] == ids
    assert second.attempts == [1, 1, 1]
    assert await second.timers.list() == []


async def test_overdue_timer_fires_once_at_once_after_restart_with_real_lateness(
    db_path: Path,
) -> None:
    first = Daemon(db_path, FakeClock())
    timer_id = await first.timers.create(duration=60, label="tea")
    await first.crash()
    later = FakeClock(START + 600)  # the daemon was down for ten minutes
    second = Daemon(db_path, later)
    await second.timers.start()
    await later.advance(0)
    await second.drain()
    await later.advance(3600)
    await second.drain()
    assert [(f["timer_id"], f["late_by_s"], f["fired_at"]) for f in second.fired] == [
        (timer_id, 540.0, START + 600)
    ]


async def test_crash_between_firing_and_processing_fires_again_with_attempt_2(
    db_path: Path,
) -> None:
    clock = FakeClock()
    first = Daemon(db_path, clock)
    timer_id = await first.timers.create(duration=5, label="tea")
    await clock.advance(5)  # TIMER_EXPIRED is queued but never processed
    await first.crash()
    second = Daemon(db_path, clock)
    await second.timers.start()
    await clock.advance(0)
    await second.drain()
    assert [(f["timer_id"], f["attempt"]) for f in second.fired] == [(timer_id, 2)]
    assert second.attempts == [2]
    await second.crash()
    third = Daemon(db_path, clock)
    assert await third.timers.start() == 0


async def test_many_timers_with_the_same_deadline_each_fire_once(daemon: Daemon) -> None:
    ids = [await daemon.timers.create(deadline=START + 30, label=str(i)) for i in range(500)]
    await daemon.clock.advance(30)
    await daemon.drain()
    assert sorted(f["timer_id"] for f in daemon.fired) == sorted(ids)
    assert len(daemon.fired) == 500 and await daemon.timers.list() == []


async def test_a_full_bus_defers_the_timer_instead_of_dropping_it(db_path: Path) -> None:
    d = Daemon(db_path, FakeClock(), max_queue=1)
    await d.timers.start()
    d.bus.publish("test", "HEARTBEAT_TICK", {})  # fills the queue
    timer_id = await d.timers.create(duration=5)
    await d.clock.advance(5)
    assert d.fired == [] and (await d.timers.get(timer_id)).attempts == 0  # type: ignore[union-attr]
    await d.drain()
    await d.clock.advance(RETRY_DELAY)
    await d.drain()
    assert [f["timer_id"] for f in d.fired] == [timer_id]


async def test_timers_due_together_beyond_the_bus_room_fire_a_moment_later(
    db_path: Path,
) -> None:
    d = Daemon(db_path, FakeClock(), max_queue=2)
    await d.timers.start()
    ids = [await d.timers.create(duration=5, label=str(i)) for i in range(3)]
    await d.clock.advance(5)
    attempts = [(await d.timers.get(tid)).attempts for tid in ids]  # type: ignore[union-attr]
    assert attempts == [1, 1, 0]  # the third was not claimed: the bus had room for two
    await d.drain()
    assert [f["timer_id"] for f in d.fired] == ids[:2]
    await d.clock.advance(RETRY_DELAY)
    await d.drain()
    assert [f["timer_id"] for f in d.fired] == ids and await d.timers.list() == []


async def test_one_failed_delivery_among_timers_due_together_is_retried_alone(
    daemon: Daemon,
) -> None:
    def picky(data: dict[str, Any], context: EventContext) -> list[Any]:
        if data["label"] == "bad" and context.attempt == 1:
            raise ValueError("not this one")
        return []

    daemon.bus.subscribe("picky", "TIMER_EXPIRED", picky)
    good = [await daemon.timers.create(duration=5, label="good") for _ in range(3)]
    bad = await daemon.timers.create(duration=5, label="bad")
    await daemon.clock.advance(5)
    await daemon.drain()
    states = [(await daemon.timers.get(tid)).state for tid in [*good, bad]]  # type: ignore[union-attr]
    assert states == ["fired", "fired", "fired", "pending"]
    assert daemon.timers.pending_count() == 1
    await daemon.clock.advance(TimersConfig().retry_initial)
    await daemon.drain()
    assert [f["timer_id"] for f in daemon.fired][-1] == bad and daemon.attempts[-1] == 2
    assert (await daemon.timers.get(bad)).state == "fired"  # type: ignore[union-attr]


async def test_a_timer_created_after_a_later_one_fires_first_and_a_cancel_holds(
    daemon: Daemon,
) -> None:
    late = await daemon.timers.create(duration=60, label="late")
    early = await daemon.timers.create(duration=10, label="early")
    await daemon.clock.advance(10)
    await daemon.drain()
    assert [f["timer_id"] for f in daemon.fired] == [early]
    await daemon.timers.cancel(late)
    await daemon.clock.advance(60)
    await daemon.drain()
    assert [f["timer_id"] for f in daemon.fired] == [early]


class StepLog(SqliteTimers):
    """SQLite timers that note each store step's fired marks and claims, by label."""

    steps: list[tuple[list[str], list[str]]]
    renewed: list[tuple[list[str], float]]

    async def advance(self, fired: Any, due: Any, *args: Any) -> Any:
        labels = {t.timer_id: t.label for t in await self.query(include_done=True)}
        self.steps.append(([labels[tid] for tid, _ in fired], [labels[tid] for tid in due]))
        return await super().advance(fired, due, *args)

    async def renew(self, timer_ids: Any, instance: str, lease_until: float) -> None:
        self.renewed.append((list(timer_ids), lease_until))
        await super().renew(timer_ids, instance, lease_until)


@pytest.fixture
async def logged(db_path: Path) -> AsyncIterator[tuple[Daemon, StepLog]]:
    made: list[StepLog] = []

    def backend(store: Store) -> StepLog:
        made.append(StepLog(store))
        made[0].steps, made[0].renewed = [], []
        return made[0]

    d = Daemon(db_path, FakeClock(), backend=backend)
    await d.timers.start()
    yield d, made[0]
    await d.crash()


async def state(d: Daemon, timer_id: str) -> str:
    timer = await d.timers.get(timer_id)
    assert timer is not None
    return timer.state


def wake_after(d: Daemon, seconds: float) -> float:
    """Return the deadline of a timer whose wake-up (its claim) comes ``seconds`` after now."""
    return d.timers.claim_ahead + seconds


async def test_a_fired_mark_goes_with_the_claim_of_a_wake_up_due_within_marks_wait(
    logged: tuple[Daemon, StepLog],
) -> None:
    d, backend = logged
    first = await d.timers.create(duration=5, label="first")
    await d.timers.create(duration=5 + wake_after(d, d.timers.marks_wait / 2), label="second")
    await d.clock.advance(5)
    await d.bus.drain()
    assert [f["label"] for f in d.fired] == ["first"] and await state(d, first) == "pending"
    await d.clock.advance(d.timers.marks_wait / 2)
    assert backend.steps == [([], ["first"]), (["first"], ["second"])]
    await d.clock.advance(d.timers.claim_ahead)
    await d.drain()
    assert backend.steps[2:] == [(["second"], [])]
    assert await state(d, first) == "fired" and await d.timers.list() == []


async def test_a_fired_mark_goes_at_once_when_no_wake_up_is_near(
    logged: tuple[Daemon, StepLog],
) -> None:
    d, backend = logged
    first = await d.timers.create(duration=5, label="first")
    await d.timers.create(duration=5 + wake_after(d, 2 * d.timers.marks_wait), label="later")
    await d.clock.advance(5)
    await d.bus.drain()
    await settle()
    assert backend.steps == [([], ["first"]), (["first"], [])]
    assert await state(d, first) == "fired"


async def test_a_waiting_mark_goes_at_once_when_the_next_wake_up_is_cancelled_or_settled(
    logged: tuple[Daemon, StepLog],
) -> None:
    d, backend = logged
    soon = wake_after(d, d.timers.marks_wait / 2)
    first = await d.timers.create(duration=5, label="first")
    second = await d.timers.create(duration=5 + soon, label="second")
    third = await d.timers.create(duration=10, label="third")
    fourth = await d.timers.create(duration=10 + soon, label="fourth")
    await d.clock.advance(5)
    await d.bus.drain()
    assert await state(d, first) == "pending"  # its mark waits for the second's claim
    await d.timers.cancel(second)
    await settle()
    assert backend.steps == [([], ["first"]), (["first"], [])]
    assert await state(d, first) == "fired"
    await d.clock.advance(5)
    await d.bus.drain()
    assert await state(d, third) == "pending"  # waits for the fourth's claim
    await d.timers.settled()  # as at shutdown: nothing is left waiting
    assert backend.steps[-1] == (["third"], []) and await state(d, third) == "fired"
    assert await state(d, fourth) == "pending"


async def test_a_timer_is_claimed_claim_ahead_before_its_deadline_and_fires_on_it(
    logged: tuple[Daemon, StepLog],
) -> None:
    d, backend = logged
    timer_id = await d.timers.create(duration=5, label="tea")
    await d.clock.advance(5 - d.timers.claim_ahead - 0.001)
    assert backend.steps == []
    await d.clock.advance(0.001)
    await d.bus.drain()
    timer = await d.timers.get(timer_id)
    assert backend.steps == [([], ["tea"])] and timer is not None and timer.attempts == 1
    assert d.fired == []  # claimed, held until its deadline
    with pytest.raises(TimerError, match="it is firing now"):
        await d.timers.cancel(timer_id)  # within claim_ahead of its deadline it counts as firing
    await d.clock.advance(d.timers.claim_ahead)
    await d.drain()
    assert [(f["timer_id"], f["fired_at"], f["late_by_s"]) for f in d.fired] == [
        (timer_id, START + 5, 0.0)
    ]


async def test_a_store_step_claims_at_most_step_size_timers(
    logged: tuple[Daemon, StepLog],
) -> None:
    d, backend = logged
    size = d.timers.step_size
    ids = [await d.timers.create(duration=5, label=str(i)) for i in range(2 * size + 3)]
    await d.clock.advance(5)
    await d.drain()
    claims = [len(due) for _, due in backend.steps if due]
    assert claims == [size, size, 3]
    assert sorted(f["timer_id"] for f in d.fired) == sorted(ids) and await d.timers.list() == []


async def test_leases_held_through_a_long_delivery_are_renewed_and_a_fresh_one_waits(
    logged: tuple[Daemon, StepLog],
) -> None:
    d, backend = logged
    lease, ahead = d.timers.lease, d.timers.claim_ahead
    first = await d.timers.create(duration=5, label="first")
    second = await d.timers.create(duration=6.2, label="second")
    await d.clock.advance(6.7)  # both published, neither handled: the bus is not drained
    tick = START + 5 - ahead + lease / 3
    assert backend.renewed == [([first], tick + lease)]  # the second was claimed 0.5 s before
    assert await d.timers.backend.pending() == {
        first: tick + lease,
        second: START + 6.2 - ahead + lease,
    }
    await d.clock.advance(lease / 3)
    assert backend.renewed[1:] == [(sorted([first, second]), tick + lease / 3 + lease)]
    await d.drain()
    assert await d.timers.list() == []
    await d.clock.advance(lease)
    assert len(backend.renewed) == 2  # nothing held, nothing renewed


async def test_reconcile_arms_a_timer_the_scheduler_does_not_know(daemon: Daemon) -> None:
    timer_id = await daemon.timers.create(duration=5)
    daemon.timers.stop()  # as if the handle had been lost
    assert await daemon.timers.reconcile() == {
        "pending": 1,
        "rearmed": 1,
        "dropped": 0,
        "overdue": 0,
    }
    await daemon.clock.advance(5)
    await daemon.drain()
    assert [f["timer_id"] for f in daemon.fired] == [timer_id]


async def test_reconcile_drops_a_handle_whose_timer_is_no_longer_pending(daemon: Daemon) -> None:
    timer_id = await daemon.timers.create(duration=5)
    with daemon.store.transaction() as db:
        db.execute("UPDATE timers SET state = 'cancelled' WHERE timer_id = ?", (timer_id,))
    assert await daemon.timers.reconcile() == {
        "pending": 0,
        "rearmed": 0,
        "dropped": 1,
        "overdue": 0,
    }
    assert daemon.clock.pending == 0


class SlowPending(SqliteTimers):
    """SQLite timers whose ``pending()`` answers what it read once the test lets it go."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.reading = asyncio.Event()
        self.answer = asyncio.Event()

    async def pending(self) -> dict[str, float]:
        rows = await super().pending()
        self.reading.set()
        await self.answer.wait()
        return rows


async def test_a_timer_created_while_reconcile_reads_is_counted_and_stays_armed(
    db_path: Path,
) -> None:
    d = Daemon(db_path, FakeClock(), backend=SlowPending)
    backend = d.timers.backend
    assert isinstance(backend, SlowPending)
    backend.answer.set()
    await d.timers.start()
    backend.answer.clear()
    backend.reading.clear()
    reconciling = asyncio.ensure_future(d.timers.reconcile())
    await backend.reading.wait()
    timer_id = await d.timers.create(duration=5)
    backend.answer.set()
    assert await reconciling == {"pending": 1, "rearmed": 0, "dropped": 0, "overdue": 0}
    assert d.timers.pending_count() == 1
    await d.clock.advance(5)
    await d.drain()
    assert [f["timer_id"] for f in d.fired] == [timer_id]
    await d.crash()


async def test_reconcile_of_a_consistent_service_changes_nothing(daemon: Daemon) -> None:
    await daemon.timers.create(duration=5)
    assert await daemon.timers.reconcile() == {
        "pending": 1,
        "rearmed": 0,
        "dropped": 0,
        "overdue": 0,
    }


async def test_a_service_that_does_not_arm_stores_timers_and_leaves_them_pending(
    db_path: Path,
) -> None:
    idle = Daemon(db_path, FakeClock(), arms=False)  # as `intentd call` runs it
    await idle.timers.start()
    timer_id = await idle.timers.create(duration=60, label="tea")
    assert (idle.clock.pending, await idle.timers.reconcile()) == (
        0,
        {"pending": 1, "rearmed": 0, "dropped": 0, "overdue": 0},
    )
    await idle.clock.advance(120)
    assert idle.fired == [] and (await idle.timers.get(timer_id)).state == "pending"
