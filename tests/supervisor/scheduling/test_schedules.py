"""Schedules with a fake clock: intervals, cron in a time zone across DST, misfire policies."""

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.context import EventContext
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from supervisor.config import JournalConfig, ScheduleConfig
from supervisor.scheduling.schedules import ScheduleService, next_run
from supervisor.store.schedules import SqliteSchedules
from supervisor.store.sqlite import Store
from tests.factories import RunningIntake
from tests.fakes.clock import START, FakeClock


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def make_schedule(**overrides: Any) -> ScheduleConfig:
    fields: dict[str, Any] = {"name": "report", "event": "REPORT_DUE", "every": 60}
    fields.update(overrides)
    return ScheduleConfig(**fields)


class Daemon:
    """A bus, the event journal and a schedule service over one database file."""

    def __init__(self, path: Path, clock: FakeClock, *schedules: ScheduleConfig, seed: int = 1):
        self.clock = clock
        self.store = Store(path)
        self.bus = MessageBus(IntentProcessor(), clock=clock.time)
        self.journal = RunningIntake(self.store, self.bus, clock, JournalConfig())
        self.events: list[dict[str, Any]] = []
        for event in {s.event for s in schedules}:
            self.bus.subscribe("test", event, self._record)
        self.service = ScheduleService(
            SqliteSchedules(self.store),
            self.journal.intake,
            clock,
            list(schedules),
            random.Random(seed),
        )

    async def start(self) -> "Daemon":
        await self.journal.start()
        self.bus.start()
        await self.service.start()
        return self

    def _record(self, data: dict[str, Any], context: EventContext) -> list[Any]:
        self.events.append(data)
        return []

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)
        await self.journal.intake.drain()
        await self.bus.drain()
        await self.service.save_pending()  # what run() does in the daemon

    async def crash(self) -> None:
        """Stop without handling what is queued (the bus is dropped, the journal keeps it)."""
        self.service.stop()
        self.bus.close()
        await self.journal.stop()
        await self.bus.stop()
        self.store.close()


async def daemon(path: Path, clock: FakeClock, *schedules: ScheduleConfig) -> Daemon:
    return await Daemon(path, clock, *schedules).start()


async def test_an_interval_schedule_publishes_its_event_on_a_fixed_grid(tmp_path: Path) -> None:
    d = await daemon(tmp_path / "s.db", FakeClock(), make_schedule(data={"kind": "daily"}))
    await d.advance(150)
    assert d.events == [
        {
            "kind": "daily",
            "schedule": "report",
            "scheduled_for": START + 60,
            "fired_at": START + 60,
            "late_by_s": 0.0,
            "missed": 1,
        },
        {
            "kind": "daily",
            "schedule": "report",
            "scheduled_for": START + 120,
            "fired_at": START + 120,
            "late_by_s": 0.0,
            "missed": 1,
        },
    ]


async def test_a_cron_schedule_keeps_local_time_across_the_spring_dst_change(
    tmp_path: Path,
) -> None:
    clock = FakeClock(utc(2027, 3, 27, 0, 0))  # Berlin moves to CEST on 2027-03-28
    d = await daemon(
        tmp_path / "s.db",
        clock,
        make_schedule(every=None, cron="0 9 * * *", timezone="Europe/Berlin"),
    )
    await d.advance(3 * 86400)
    assert [e["scheduled_for"] for e in d.events] == [
        utc(2027, 3, 27, 8, 0),
        utc(2027, 3, 28, 7, 0),
        utc(2027, 3, 29, 7, 0),
    ]


def test_a_cron_time_skipped_by_dst_runs_right_after_the_gap() -> None:
    schedule = make_schedule(every=None, cron="30 2 * * *", timezone="Europe/Berlin")
    assert next_run(schedule, utc(2027, 3, 27, 12, 0)) == utc(2027, 3, 28, 1, 0)  # 03:00 CEST


def test_a_cron_time_repeated_by_dst_runs_once() -> None:
    schedule = make_schedule(every=None, cron="30 2 * * *", timezone="Europe/Berlin")
    first = next_run(schedule, utc(2027, 10, 30, 12, 0))
    assert first == utc(2027, 10, 31, 0, 30)  # 02:30 CEST
    assert next_run(schedule, first, previous=first) == utc(2027, 11, 1, 1, 30)  # not 02:30 CET


def test_a_sub_hourly_cron_keeps_running_through_the_repeated_hour() -> None:
    schedule = make_schedule(every=None, cron="0 * * * *", timezone="Europe/Berlin")
    first = next_run(schedule, utc(2027, 10, 30, 23, 30))  # 02:00 CEST
    assert next_run(schedule, first, previous=first) == first + 3600  # 02:00 CET


async def _down_for(tmp_path: Path, seconds: float, **overrides: Any) -> Daemon:
    schedule = make_schedule(**overrides)
    first = await daemon(tmp_path / "s.db", FakeClock(), schedule)
    await first.crash()
    return await daemon(tmp_path / "s.db", FakeClock(START + seconds), schedule)


async def test_misfire_skip_fires_nothing_missed_and_resumes_on_the_grid(tmp_path: Path) -> None:
    d = await _down_for(tmp_path, 330, misfire="skip")
    await d.advance(0)
    assert d.events == []
    await d.advance(30)
    assert [e["scheduled_for"] for e in d.events] == [START + 360]


async def test_misfire_once_fires_the_latest_missed_run_once(tmp_path: Path) -> None:
    d = await _down_for(tmp_path, 330, misfire="once")
    await d.advance(0)
    assert [(e["scheduled_for"], e["late_by_s"], e["missed"]) for e in d.events] == [
        (START + 300, 30.0, 5)
    ]


async def test_misfire_all_fires_each_missed_run_in_order(tmp_path: Path) -> None:
    d = await _down_for(tmp_path, 330, misfire="all")
    await d.advance(0)
    assert [e["scheduled_for"] for e in d.events] == [START + 60 * k for k in range(1, 6)]


async def test_misfire_all_only_counts_runs_within_the_grace_period(tmp_path: Path) -> None:
    d = await _down_for(tmp_path, 7200, misfire="all", grace=300)
    await d.advance(0)
    assert [e["scheduled_for"] for e in d.events] == [START + 60 * k for k in range(116, 121)]


async def test_misfire_once_fires_nothing_when_every_missed_run_is_past_grace(
    tmp_path: Path,
) -> None:
    d = await _down_for(tmp_path, 7230, misfire="once", grace=10, every=3600)
    await d.advance(0)
    assert d.events == []
    await d.advance(3600)
    assert [e["scheduled_for"] for e in d.events] == [START + 3 * 3600]


async def test_a_restart_before_the_next_run_keeps_the_persisted_run_time(tmp_path: Path) -> None:
    d = await _down_for(tmp_path, 30)
    await d.advance(30)
    assert [(e["scheduled_for"], e["missed"]) for e in d.events] == [(START + 60, 1)]


async def test_a_run_stored_but_not_handled_before_a_crash_is_delivered_after_it(
    tmp_path: Path,
) -> None:
    schedule = make_schedule(misfire="once")
    clock = FakeClock()
    first = await daemon(tmp_path / "s.db", clock, schedule)
    await first.advance(0)
    first.bus.close()  # the dispatcher refuses events: the run is journaled, never handled
    await clock.advance(60)
    await first.crash()
    second = await daemon(tmp_path / "s.db", clock, schedule)
    await second.advance(0)
    assert (first.events, [e["scheduled_for"] for e in second.events]) == ([], [START + 60])


async def test_a_run_journaled_whose_ran_mark_was_lost_is_not_delivered_twice(
    tmp_path: Path,
) -> None:
    schedule = make_schedule(misfire="all")
    clock = FakeClock()
    first = await daemon(tmp_path / "s.db", clock, schedule)
    await first.advance(61)
    first.store.db.execute(  # as if the daemon died between the journal commit and the mark
        "UPDATE schedule_state SET next_run_at = ?, last_run_at = NULL", (START + 60,)
    )
    await first.crash()
    second = await daemon(tmp_path / "s.db", clock, schedule)
    await second.advance(0)
    assert [e["scheduled_for"] for e in first.events] == [START + 60]
    assert second.events == []
    await second.advance(60)
    assert [e["scheduled_for"] for e in second.events] == [START + 120]


async def test_jitter_delays_the_run_within_its_bound(tmp_path: Path) -> None:
    d = await daemon(tmp_path / "s.db", FakeClock(), make_schedule(jitter=10))
    await d.advance(60)
    assert d.events == []
    await d.advance(10)
    (event,) = d.events
    assert event["scheduled_for"] == START + 60 and 0 < event["late_by_s"] <= 10


async def test_a_changed_schedule_starts_afresh_from_now(tmp_path: Path) -> None:
    first = await daemon(tmp_path / "s.db", FakeClock(), make_schedule(every=60))
    await first.crash()
    d = await daemon(tmp_path / "s.db", FakeClock(START + 1000), make_schedule(every=600))
    await d.advance(600)
    assert [e["scheduled_for"] for e in d.events] == [START + 1600]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"every": 60, "cron": "* * * * *"}, "exactly one of 'cron' or 'every'"),
        ({"every": None}, "exactly one of 'cron' or 'every'"),
        ({"every": None, "cron": "every day"}, "not a valid cron expression"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_a_bad_schedule_is_a_config_error(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make_schedule(**fields)
