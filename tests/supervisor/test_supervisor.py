import asyncio
import os
import signal
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from common.errors import ConfigError
from common.events import FAST_HEARTBEAT_TICK, HEARTBEAT_TICK
from supervisor.config import Config
from supervisor.supervisor import Supervisor
from tests.fakes.clock import START, FakeClock

ROLE = '''
"""Answers PING_SENT with a notification."""
from common.intents import NotificationIntent

ROLE_CONFIG = {"name": "pinger", "version": "1.0.0", "description": "pings",
               "llm_type": "WEAK", "fast_reply": True, "when_to_use": "never"}


def handle_ping(event_data, context):
    return [NotificationIntent(f"pong {event_data['n']}", "console")]


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"PING_SENT": handle_ping},
            "tools": [], "intents": {}}
'''


def make_supervisor(tmp_path: Path, clock=None, **sections) -> Supervisor:
    roles = tmp_path / "roles"
    roles.mkdir(exist_ok=True)
    config = Config.model_validate(
        {
            "roles": {"directory": str(roles)},
            "storage": {"path": str(tmp_path / "var/intentd.db")},
            "http": {"enabled": False},
            **sections,
        }
    )
    return Supervisor(config=config, clock=clock or FakeClock())


def collect(supervisor: Supervisor, event_type: str) -> list:
    seen: list = []
    supervisor.message_bus.subscribe("test", event_type, lambda data, ctx: seen.append(data))
    return seen


def test_constructing_starts_no_thread_and_no_task_without_a_loop(tmp_path):
    before = threading.active_count()
    Supervisor()
    make_supervisor(tmp_path)
    assert threading.active_count() == before


async def test_constructing_inside_a_running_loop_starts_no_task(tmp_path):
    before = (threading.active_count(), len(asyncio.all_tasks()))
    Supervisor()
    make_supervisor(tmp_path)
    assert (threading.active_count(), len(asyncio.all_tasks())) == before


async def test_heartbeats_tick_on_a_drift_free_schedule_and_stop_cleanly(tmp_path):
    clock = FakeClock()
    supervisor = make_supervisor(tmp_path, clock)
    threads = threading.active_count()
    tasks_before = asyncio.all_tasks()
    async with supervisor.running():
        slow, fast = collect(supervisor, HEARTBEAT_TICK), collect(supervisor, FAST_HEARTBEAT_TICK)
        for _ in range(13):
            await clock.advance(5)
            assert threading.active_count() == threads
        await supervisor.message_bus.drain()
    assert slow == [
        {"timestamp": START + 30, "active_workflows": 0},
        {"timestamp": START + 60, "active_workflows": 0},
    ]
    assert [tick["timestamp"] for tick in fast] == [START + 5 * k for k in range(1, 14)]
    assert supervisor.last_heartbeat == START + 60
    assert asyncio.all_tasks() == tasks_before
    assert threading.active_count() == threads


async def test_a_slow_tick_does_not_shift_later_ticks(tmp_path):
    clock = FakeClock()
    supervisor = make_supervisor(tmp_path, clock)

    def slow_count():
        clock.now += 3  # building each tick's data takes three seconds
        return 0

    supervisor.active_workflows = slow_count  # the heartbeat's data source, passed in
    async with supervisor.running():
        slow = collect(supervisor, HEARTBEAT_TICK)
        for _ in range(3):
            await clock.advance(30)
    assert [tick["timestamp"] for tick in slow] == [START + 30, START + 60, START + 90]


async def test_a_failing_tick_is_logged_and_ticking_goes_on(tmp_path):
    clock = FakeClock()
    supervisor = make_supervisor(tmp_path, clock)
    calls = []

    def flaky_count():
        calls.append(clock.time())
        if len(calls) == 1:
            raise RuntimeError("engine not ready")
        return 0

    supervisor.active_workflows = flaky_count  # the heartbeat's data source, passed in
    async with supervisor.running():
        slow = collect(supervisor, HEARTBEAT_TICK)
        for _ in range(3):
            await clock.advance(30)
    assert slow == [
        {"timestamp": START + 60, "active_workflows": 0},
        {"timestamp": START + 90, "active_workflows": 0},
    ]


async def test_a_role_handles_an_event_end_to_end(tmp_path, capsys):
    supervisor = make_supervisor(tmp_path)
    (tmp_path / "roles" / "pinger.py").write_text(ROLE)
    async with supervisor.running():
        supervisor.message_bus.publish("test", "PING_SENT", {"n": 1})
        await supervisor.message_bus.drain()
    assert "pong 1" in capsys.readouterr().out
    assert sorted(supervisor.role_registry.roles) == ["pinger"]


async def test_sigterm_stops_the_daemon_gracefully(tmp_path):
    supervisor = make_supervisor(tmp_path)
    run = asyncio.get_running_loop().create_task(supervisor.run())
    await supervisor.wait_ready()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run, 5)
    assert run.result() is None


async def test_sigint_stops_the_daemon_gracefully_like_sigterm(tmp_path):
    supervisor = make_supervisor(tmp_path)
    run = asyncio.get_running_loop().create_task(supervisor.run())
    await supervisor.wait_ready()
    with capture_logs() as logs:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(run, 5)
    assert run.result() is None
    events = [entry for entry in logs if entry["event"] in ("signal_received", "stopped")]
    assert [(entry["event"], entry.get("signal")) for entry in events] == [
        ("signal_received", "SIGINT"),
        ("stopped", None),
    ]


async def test_shutdown_timeout_bounds_the_drain_of_a_handler_that_never_returns(tmp_path):
    roles = {"directory": str(tmp_path / "roles"), "handler_timeout": 60}
    supervisor = make_supervisor(tmp_path, supervisor={"shutdown_timeout": 0.2}, roles=roles)
    tasks_before = asyncio.all_tasks()
    never = asyncio.Event()
    started = asyncio.Event()

    async def stuck(data, ctx):
        started.set()
        await never.wait()
        return []

    run = asyncio.get_running_loop().create_task(supervisor.run())
    await supervisor.wait_ready()
    supervisor.message_bus.subscribe("stuck", "PING_SENT", stuck)
    supervisor.message_bus.publish("test", "PING_SENT", {"n": 1})
    await started.wait()
    with capture_logs() as logs:
        supervisor.stop()
        await asyncio.wait_for(run, 5)
    assert run.result() is None
    timed_out = [entry for entry in logs if entry["event"] == "shutdown_drain_timed_out"]
    assert timed_out == [
        {
            "event": "shutdown_drain_timed_out",
            "log_level": "warning",
            "queued": 0,
            "left_in_journal": 0,
            "timeout_s": 0.2,
        }
    ]
    assert asyncio.all_tasks() == tasks_before  # no task the daemon created is left pending


async def test_shutdown_drains_queued_events_first(tmp_path):
    supervisor = make_supervisor(tmp_path)
    (tmp_path / "roles" / "pinger.py").write_text(ROLE)
    seen = []
    async with supervisor.running():
        supervisor.message_bus.subscribe("test", "PING_SENT", lambda d, c: seen.append(d["n"]))
        for n in range(100):
            supervisor.message_bus.publish("test", "PING_SENT", {"n": n})
    assert seen == list(range(100))


async def test_the_daemon_stops_when_its_dispatcher_dies(tmp_path):
    supervisor = make_supervisor(tmp_path)
    run = asyncio.get_running_loop().create_task(supervisor.run())
    await supervisor.wait_ready()
    supervisor._dispatcher.cancel()  # something outside our code cancels the dispatcher
    await asyncio.wait_for(run, 5)
    assert run.result() is None


async def test_a_default_channel_that_names_no_channel_stops_the_start(tmp_path):
    supervisor = make_supervisor(tmp_path, channels={"default": "ops"})
    with pytest.raises(ConfigError, match=r"^channels\.default is 'ops', which names no channel"):
        await supervisor.run()
