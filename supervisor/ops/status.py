"""The daemon's status report: what ``GET /status`` returns and ``intentd status`` prints.

Parts the core does not own report their own fields with one line, e.g.
``supervisor.status.add("outbox_depth", lambda: outbox.stats.depth)``. A field no part can report
yet (the store is not open) is ``null``, so the report's shape never depends on what is configured.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from supervisor.supervisor import Supervisor

log = structlog.get_logger("intentd.status")

StatusField = Callable[[], Any]
CONTRIBUTED_FIELDS = ("pending_timers", "outbox_depth", "dead_letters", "loop_lag_ms")


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


def status_report(supervisor: "Supervisor") -> dict[str, Any]:
    """Return the daemon's status as a JSON-ready dict."""
    now = supervisor.clock.time()
    started, heartbeat = supervisor.started_at, supervisor.last_heartbeat
    not_ready = {name: why for name, why in supervisor.readiness.report().items() if why}
    return {
        "started_at": _iso(started),
        "uptime_s": round(now - started, 3) if started is not None else None,
        "ready": not not_ready,
        "not_ready": not_ready,
        "roles": sorted(supervisor.role_registry.roles),
        "bus_queue_depth": supervisor.message_bus.queue_depth,
        "events_published": sum(supervisor.message_bus.stats.published.values()),
        "active_workflows": supervisor.active_workflows(),
        "last_heartbeat": _iso(heartbeat),
        "last_heartbeat_age_s": round(now - heartbeat, 3) if heartbeat is not None else None,
        **supervisor.status.read(),
    }


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None
