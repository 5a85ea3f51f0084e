"""Schedules: config.yaml entries that publish a named event on a cron expression or an interval.

Rules kept here:
- Run times are computed from wall-clock time in the schedule's time zone (cron) or on a fixed
  grid (interval), armed with ``clock.call_at`` and persisted; a run counts as done, and the next
  run time is saved, only once its event is committed to the event journal, which delivers it
  from then on. The event is stored under the key ``schedule:<name>:<run time>`` (its id derived
  from it), so a run journaled but not yet marked is not journaled twice after a crash.
- A cron time that a daylight-saving change skips runs at the first instant after the gap; a
  wall-clock time that the change repeats runs once, unless the hour field is a wildcard (so an
  hourly schedule keeps running every real hour), as Vixie cron does.
- Runs missed while the daemon was down follow the schedule's misfire policy: ``skip`` none,
  ``once`` the latest, ``all`` each of them; only runs within ``grace`` seconds count.
- A changed cron, interval or time zone starts the schedule afresh from now.
- Several instances may run the same schedules on one store: each arms them, and the journal's
  unique key makes each run one event cluster-wide. Saving the timing is a step of ``run()``.
"""

import asyncio
import json
import math
import random
from asyncio import Future
from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo

import structlog
from croniter import croniter

from common.clock import Cancellable, Clock, utc_iso
from common.errors import BusClosedError
from common.ids import derived_event_id
from supervisor.config import ScheduleConfig
from supervisor.event_intake import EventIntake
from supervisor.store.base import ScheduleBackend
from supervisor.store.journal import Appended

log = structlog.get_logger("intentd.schedules")


def next_run(schedule: ScheduleConfig, after: float, previous: float | None = None) -> float:
    """Return the first run time strictly after ``after``; ``previous`` is the last run time."""
    if schedule.interval is not None:
        if previous is None:
            return after + schedule.interval
        steps = max(1, math.floor((after - previous) / schedule.interval) + 1)
        return previous + steps * schedule.interval
    zone = ZoneInfo(schedule.timezone)
    runs = croniter(schedule.cron, datetime.fromtimestamp(after, zone))
    last_wall = None
    if previous is not None and not schedule.cron.split()[1].startswith("*"):  # type: ignore[union-attr]
        last_wall = datetime.fromtimestamp(previous, zone).replace(tzinfo=None)
    while True:
        candidate: datetime = runs.get_next(datetime)
        if candidate.replace(tzinfo=None) != last_wall:  # a repeated wall-clock time runs once
            return candidate.timestamp()


def spec_of(schedule: ScheduleConfig) -> str:
    """Return what, when changed, restarts a schedule's timing."""
    return json.dumps([schedule.cron, schedule.interval, schedule.timezone])


class ScheduleService:
    """Publish each configured schedule's event at its run times, across restarts."""

    def __init__(
        self,
        backend: ScheduleBackend,
        events: EventIntake,
        clock: Clock,
        schedules: list[ScheduleConfig],
        rng: random.Random | None = None,
    ) -> None:
        self.backend = backend
        self.events = events
        self.clock = clock
        self.schedules = schedules
        self.rng = rng or random.Random()
        self._armed: dict[str, Cancellable] = {}
        self._next: dict[str, float] = {}  # by schedule name: the run time armed now
        self._saves: dict[str, tuple[float, float | None]] = {}  # timing not yet saved, by name
        self._saving = asyncio.Event()

    async def start(self) -> None:
        """Apply each schedule's misfire policy to runs missed while down, then arm the next run."""
        now = self.clock.time()
        saved = await self.backend.load()
        for schedule in self.schedules:
            row = saved.get(schedule.name)
            if row is None or row[0] != spec_of(schedule):
                due = next_run(schedule, now)
                await self.backend.save(schedule.name, spec_of(schedule), due, None)
            else:
                due = self._catch_up(schedule, row[1], now)
            self._arm(schedule, due)
        await self.save_pending()

    async def run(self) -> None:
        """Save the timing of journaled runs until cancelled; the supervisor owns this task."""
        while True:
            await self._saving.wait()
            try:
                await self.save_pending()
            except Exception as err:  # the store is away: the run is journaled, save it later
                log.error("schedule_save_failed", error=str(err))
                await self.clock.sleep_until(self.clock.time() + 1.0)

    async def save_pending(self) -> None:
        """Save the timing of every run journaled since the last save."""
        self._saving.clear()
        while self._saves:
            name, (next_run_at, last_run_at) = next(iter(self._saves.items()))
            schedule = next(s for s in self.schedules if s.name == name)
            await self.backend.save(name, spec_of(schedule), next_run_at, last_run_at)
            if self._saves.get(name) == (next_run_at, last_run_at):
                del self._saves[name]

    def stop(self) -> None:
        """Disarm every schedule (their state stays on disk)."""
        for handle in self._armed.values():
            handle.cancel()
        self._armed.clear()
        self._next.clear()

    def _catch_up(self, schedule: ScheduleConfig, due: float, now: float) -> float:
        if due > now:
            return due
        missed = []
        earliest = now - schedule.grace
        run = due if due >= earliest else next_run(schedule, earliest, previous=due)
        while run <= now:
            missed.append(run)
            run = next_run(schedule, run, previous=run)
        fire = {"skip": [], "once": missed[-1:], "all": missed}[schedule.misfire]
        log.info(
            "schedule_missed_runs",
            schedule=schedule.name,
            missed=len(missed),
            firing=len(fire),
            misfire=schedule.misfire,
        )
        for when, following in zip(fire, [*fire[1:], run], strict=False):
            self._publish(schedule, when, following, missed=len(missed))
        if not fire:
            self._save(schedule, run, missed[-1] if missed else None)
        return run

    def next_runs(self) -> list[dict[str, str]]:
        """Return each armed schedule's name, event and next run time (ISO 8601 UTC)."""
        return [
            {
                "name": schedule.name,
                "event": schedule.event,
                "next_run": utc_iso(self._next[schedule.name]),
            }
            for schedule in self.schedules
            if schedule.name in self._next
        ]

    def _arm(self, schedule: ScheduleConfig, due: float) -> None:
        self._next[schedule.name] = due
        log.info(
            "schedule_armed",
            schedule=schedule.name,
            event_type=schedule.event,
            next_run=utc_iso(due),
        )
        delay = self.rng.uniform(0, schedule.jitter) if schedule.jitter else 0.0
        self._armed[schedule.name] = self.clock.call_at(
            due + delay, partial(self._fire, schedule, due)
        )

    def _fire(self, schedule: ScheduleConfig, due: float) -> None:
        following = next_run(schedule, max(due, self.clock.time()), previous=due)
        self._arm(schedule, following)
        self._publish(schedule, due, following, missed=1)

    def _publish(self, schedule: ScheduleConfig, due: float, following: float, missed: int) -> None:
        now = self.clock.time()
        data = {
            **schedule.data,
            "schedule": schedule.name,
            "scheduled_for": due,
            "fired_at": now,
            "late_by_s": max(0.0, now - due),
            "missed": missed,
        }
        key = f"schedule:{schedule.name}:{due!r}"
        try:
            stored = self.events.submit(
                "schedules",
                schedule.event,
                data,
                source=f"schedule:{schedule.name}",
                key=key,
                event_id=derived_event_id(key),
            )
        except BusClosedError as err:  # stopping: the next start catches the run up
            log.warning("schedule_publish_failed", schedule=schedule.name, error=str(err))
            return
        stored.add_done_callback(partial(self._journaled, schedule, following, due))

    def _journaled(
        self, schedule: ScheduleConfig, following: float, due: float, stored: "Future[Appended]"
    ) -> None:
        if stored.cancelled() or stored.exception() is not None:
            error = "stopped" if stored.cancelled() else str(stored.exception())
            log.warning("schedule_run_not_stored", schedule=schedule.name, error=error)
            return  # not marked: the next start catches the run up
        self._save(schedule, following, due)

    def _save(
        self, schedule: ScheduleConfig, next_run_at: float, last_run_at: float | None
    ) -> None:
        earlier = self._saves.get(schedule.name)
        if earlier is not None and last_run_at is None:
            last_run_at = earlier[1]
        self._saves[schedule.name] = (next_run_at, last_run_at)
        self._saving.set()
