"""The Supervisor opens the store in run(), fires timers through the timer role, and audits."""

import io
import threading
from pathlib import Path

import pytest

from common.errors import StoreError
from supervisor.audit_store import tail
from supervisor.config import Config
from supervisor.store import Store
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock

ROLES = Path(__file__).resolve().parents[2] / "roles"


def make_config(tmp_path: Path, **sections: object) -> Config:
    return Config.model_validate(
        {"storage": {"path": str(tmp_path / "var" / "intentd.db")},
         "roles": {"directory": str(ROLES)}, "http": {"port": 0}, **sections}
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
        supervisor.timers.create(duration=60, label="tea", channel_id="console", user_id="U1")
        await clock.advance(60)
        await supervisor.message_bus.drain()
    assert "Timer expired: tea" in out.getvalue()
    store = Store(tmp_path / "var" / "intentd.db")
    assert [(r.action, r.role, r.details["label"]) for r in tail(store.db)] == [
        ("timer_expired", "timer", "tea")]


async def test_a_schedule_from_config_publishes_its_event(tmp_path: Path) -> None:
    clock = FakeClock()
    config = make_config(tmp_path, schedules=[{"name": "beat", "event": "TIMER_EXPIRED",
                                               "every": 30, "data": {"label": "stand up"}}])
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
