"""The daemon's status report: what ``GET /status`` returns and ``intentd status`` prints.

Parts the core does not own report their own fields with one line, e.g.
``supervisor.status.add("outbox_depth", lambda: outbox.stats.depth)``. A field no part can report
yet (the store is not open) is ``null``, so the report's shape never depends on what is configured.
"""

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from common.clock import utc_iso
from common.message_bus import MessageBus

log = structlog.get_logger("intentd.status")

StatusField = Callable[[], Any]
CONTRIBUTED_FIELDS = (
    "pending_timers",
    "outbox_depth",
    "dead_letters",
    "loop_lag_ms",
    "journal_backlog",
    "journal_oldest_age_s",
    "dead_events",
    "schedules",
    "instances",
)


class StatusFields:
    """Status fields contributed by parts of the daemon, read when the report is built."""

    def __init__(self) -> None:
        self._fields: dict[str, StatusField] = {}

    def add(self, name: str, read: StatusField) -> None:
        """Report ``read()`` under ``name`` in every status report."""
        self._fields[name] = read

    def read(self) -> dict[str, Any]:
        """Return every field's current value; a field that raises reads as ``None``."""
        values: dict[str, Any] = dict.fromkeys(CONTRIBUTED_FIELDS)
        for name, read in self._fields.items():
            try:
                values[name] = read()
            except Exception as err:
                log.error("status_field_failed", field=name, error=str(err), exc_info=err)
                values[name] = None
        return values


def status_report(
    *,
    now: float,
    started_at: float | None,
    last_heartbeat: float | None,
    readiness: Mapping[str, str | None],
    roles: list[str],
    bus: MessageBus,
    active_workflows: int,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """Return the daemon's status as a JSON-ready dict."""
    not_ready = {name: why for name, why in readiness.items() if why}
    return {
        "started_at": _iso(started_at),
        "uptime_s": round(now - started_at, 3) if started_at is not None else None,
        "ready": not not_ready,
        "not_ready": not_ready,
        "roles": roles,
        "bus_queue_depth": bus.queue_depth,
        "events_published": sum(bus.stats.published.values()),
        "active_workflows": active_workflows,
        "last_heartbeat": _iso(last_heartbeat),
        "last_heartbeat_age_s": round(now - last_heartbeat, 3)
        if last_heartbeat is not None
        else None,
        **fields,
    }


def _iso(epoch: float | None) -> str | None:
    return utc_iso(epoch) if epoch is not None else None
