"""The Supervisor opens the store in run(), fires timers through the timer role, and audits."""

import asyncio
import io
import sqlite3
import threading
from pathlib import Path

import pytest

from common.errors import StoreError
from common.message_bus import MessageBus
from supervisor.config import Config
from supervisor.scheduling.timers import TimerService
from supervisor.store.audit import tail
from supervisor.store.sqlite import Store
from supervisor.store.timers import SqliteTimers
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock

ROLES = Path(__file__).resolve().parents[2] / "roles"


def make_config(tmp_path: Path, **sections: object) -> Config:
    return Config.model_validate(
        {
            "storage": {"path": str(tmp_path / "var" / "intentd.db")},
            "roles": {"directory": str(ROLES)},
            "http": {"port": 0},
            **sections,
        }
    )


def test_constructing_a_supervisor_opens_no_store_and_starts_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    supervisor = Supervisor(config=make_config(tmp_path))
    assert (threading.active_count(), supervisor.store) == (before, None)
    assert not (tmp_path / "var").exists()


async def test_a_timer_fires_through_the_timer_role_and_is_audited(tmp_path: Path) -> None:
    clock, out = FakeClock(), io.StringIO()
    supervisor = Supervisor(config=make_config(tmp_path), clock=clock, stdout=out)
    async with supervisor.running():
        assert supervisor.timers is not None
        await supervisor.timers.create(duration=60, label="tea", channel_id="console", user_id="U1")
        await clock.advance(60)
        await supervisor.message_bus.drain()
    assert "Timer expired: tea" in out.getvalue()
    store = Store(tmp_path / "var" / "intentd.db")
    assert [(r.action, r.role, r.details["label"]) for r in tail(store.db)] == [
        ("timer_expired", "timer", "tea")
    ]


async def test_a_lost_timer_is_rearmed_by_the_service_with_the_timer_role_quarantined(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    supervisor = Supervisor(config=make_config(tmp_path), clock=clock, stdout=io.StringIO())
    expired: list[str] = []
    supervisor.message_bus.subscribe(
        "test", "TIMER_EXPIRED", lambda data, context: expired.append(data["timer_id"])
    )
    async with supervisor.running():
        assert supervisor.role_registry is not None and supervisor.store is not None
        supervisor.role_registry.quarantine("timer", 5, 60.0, "test")
        # stored by another process (as `intentd call` does), so this daemon never armed it
        other = TimerService(SqliteTimers(supervisor.store), MessageBus(), clock, arms=False)
        timer_id = await other.create(duration=20, label="tea")
        await clock.advance(5)  # the fast heartbeat's store check arms it
        await clock.advance(15)
        await supervisor.message_bus.drain()
        assert supervisor.role_registry.quarantined == {"timer"}
    assert expired == [timer_id]


async def test_a_schedule_from_config_publishes_its_event(tmp_path: Path) -> None:
    clock = FakeClock()
    config = make_config(
        tmp_path,
        schedules=[
            {"name": "beat", "event": "TIMER_EXPIRED", "every": 30, "data": {"label": "stand up"}}
        ],
    )
    out = io.StringIO()
    supervisor = Supervisor(config=config, clock=clock, stdout=out)
    async with supervisor.running():
        await clock.advance(30)
        await supervisor.message_bus.drain()
    assert "Timer expired: stand up" in out.getvalue()


async def test_a_corrupt_database_stops_the_start_with_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "var" / "intentd.db"
    path.parent.mkdir()
    path.write_bytes(b"garbage" * 1000)
    supervisor = Supervisor(config=make_config(tmp_path), clock=FakeClock())
    with pytest.raises(StoreError, match=f"store.path {str(path)!r}: cannot open the database"):
        await supervisor.run()


async def test_a_damaged_timers_table_stops_the_start_with_one_clear_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    setup = Supervisor(config=config, clock=FakeClock())
    async with setup.running():
        assert setup.timers is not None
        for i in range(3000):
            await setup.timers.create(duration=3600 + i, label="x" * 200)
    path = tmp_path / "var" / "intentd.db"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xff" * 8192  # the header stays intact; table pages break
    path.write_bytes(bytes(data))
    supervisor = Supervisor(config=config, clock=FakeClock())
    with pytest.raises(StoreError, match="cannot read the pending timers and schedules"):
        await supervisor.run()
    assert supervisor.store is not None
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        supervisor.store.db.execute("SELECT 1")  # what was opened for the start is closed again


def test_a_supervisor_runs_again_on_a_new_event_loop(tmp_path: Path) -> None:
    supervisor = Supervisor(config=make_config(tmp_path), clock=FakeClock())
    states = []

    async def one_run() -> None:
        async with supervisor.running():
            states.append(supervisor.models.closed)

    asyncio.run(one_run())
    asyncio.run(one_run())  # a second loop: nothing may stay bound to the first one
    assert (states, supervisor.models.closed) == ([False, False], True)
