"""Heartbeats: ticks published on a drift-free schedule (tick k at start + k * interval)."""

import math
from collections.abc import Callable
from typing import Any

import structlog

from common.clock import Clock
from common.message_bus import MessageBus

log = structlog.get_logger("intentd.heartbeat")


async def tick_forever(
    bus: MessageBus,
    clock: Clock,
    event_type: str,
    interval: float,
    data: Callable[[float], dict[str, Any]],
    on_tick: Callable[[float], None] | None = None,
) -> None:
    """Publish ``event_type`` every ``interval`` seconds until cancelled.

    Ticks missed while the loop was busy are skipped, not bunched: the next tick is the next
    point on the original grid. A failing tick is logged and the schedule carries on.
    """
    start = clock.time()
    k = 1
    while True:
        due = start + k * interval
        await clock.sleep_until(due)
        now = clock.time()
        try:
            bus.publish("supervisor", event_type, data(now), source="supervisor")
            if on_tick is not None:
                on_tick(now)
        except Exception as err:
            log.error("tick_failed", event_type=event_type, error=str(err), exc_info=err)
        k = max(k + 1, math.floor((now - start) / interval) + 1)
