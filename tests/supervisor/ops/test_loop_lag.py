import asyncio
import time

from structlog.testing import capture_logs

from common.message_bus import MessageBus
from supervisor.ops.loop_lag import LoopLagMonitor
from supervisor.supervisor import Supervisor
from tests.supervisor.http_daemon import make_config


async def handle_ping(event_data, context):
    await asyncio.sleep(0)
    time.sleep(0.2)  # noqa: ASYNC251 - blocks the loop between awaits, on purpose
    return []


async def test_async_handler_blocking_the_loop_is_named_by_the_lag_monitor():
    bus = MessageBus()
    bus.subscribe("slowpoke", "PING", handle_ping)
    monitor = LoopLagMonitor(interval=0.01, threshold=0.1, last_called=lambda: bus.last_called)
    async with asyncio.TaskGroup() as tasks:
        watcher = tasks.create_task(monitor.run())
        dispatcher = tasks.create_task(bus.run())
        await asyncio.sleep(0)
        with capture_logs() as logs:
            bus.publish("test", "PING", {})
            while await monitor.next_sample() <= monitor.threshold:
                pass
        watcher.cancel()
        dispatcher.cancel()
    assert [(e["suspect_role"], e["suspect_handler"]) for e in logs] == [
        ("slowpoke", "handle_ping")
    ]
    assert monitor.max >= 0.19


def test_lag_under_the_threshold_is_measured_but_not_reported():
    monitor = LoopLagMonitor(threshold=0.1)
    with capture_logs() as logs:
        monitor.observe(0.05)
        monitor.observe(-0.001)
    assert (monitor.current, monitor.max, monitor.reported, logs) == (0.0, 0.05, 0, [])


def test_lag_over_the_threshold_without_a_handler_is_reported_unattributed():
    monitor = LoopLagMonitor(threshold=0.1)
    with capture_logs() as logs:
        monitor.observe(0.25)
    assert logs == [
        {
            "event": "loop_lagged",
            "log_level": "warning",
            "lag_ms": 250.0,
            "threshold_ms": 100.0,
            "suspect_role": None,
            "suspect_handler": None,
        }
    ]


async def test_a_quiet_loop_is_sampled_less_and_less_often_up_to_the_idle_interval():
    monitor = LoopLagMonitor(interval=0.001, idle_interval=0.004)
    async with asyncio.TaskGroup() as tasks:
        watcher = tasks.create_task(monitor.run())
        delays = []
        for _ in range(4):
            await monitor.next_sample()
            delays.append(monitor.delay)
        watcher.cancel()
    assert delays == [0.002, 0.004, 0.004, 0.004]


async def test_a_poke_wakes_a_quiet_monitor_and_brings_back_the_short_interval():
    monitor = LoopLagMonitor(interval=0.001, idle_interval=3600)
    async with asyncio.TaskGroup() as tasks:
        watcher = tasks.create_task(monitor.run())
        while monitor.delay < 0.5:
            await monitor.next_sample()
        monitor.poke()
        await monitor.next_sample()  # an hour away, had the poke not woken it
        after_poke = monitor.delay
        watcher.cancel()
    assert after_poke == 0.002  # one quiet sample since the poke: twice the interval again


async def test_a_handler_run_pokes_the_daemons_lag_monitor_and_a_heartbeat_does_not(tmp_path):
    sup = Supervisor(config=make_config(tmp_path))
    sup.message_bus.subscribe("test", "PING", lambda data, ctx: [])
    sup.message_bus.subscribe("test", "FAST_HEARTBEAT_TICK", lambda data, ctx: [])
    sup.message_bus.publish("supervisor", "FAST_HEARTBEAT_TICK", {}, source="supervisor")
    await sup.message_bus.drain()
    after_tick = sup.loop_lag.poked
    sup.message_bus.publish("test", "PING", {})
    await sup.message_bus.drain()
    assert (after_tick, sup.loop_lag.poked) == (False, True)
