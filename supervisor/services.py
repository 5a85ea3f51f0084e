"""The daemon's RoleServices: what a role's intent handlers may use, handed in as an argument.

The contract a role sees is ``common.role_api.RoleServices``; this is the daemon's implementation
(and the constructor a test of an intent handler can use directly).
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from common.context import cause_sequence, current_cause
from common.ids import derived_event_id, new_id
from common.message_bus import MessageBus
from common.role_api import RoleKV, RoleLogger, Timers

if TYPE_CHECKING:
    from supervisor.event_intake import EventIntake


@dataclass
class DaemonServices:
    """The infrastructure one role may use from its intent handlers."""

    role: str
    bus: MessageBus
    timers: Timers
    kv: RoleKV
    settings: dict[str, Any] = field(default_factory=dict)
    log: RoleLogger = field(default=None)  # type: ignore[assignment]  # filled in below
    events: "EventIntake | None" = None  # the event journal; without it events go to the bus

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = structlog.get_logger("intentd.role").bind(role=self.role)

    def publish(self, event_type: str, data: dict[str, Any] | None = None) -> str:
        """Publish an event caused by the intent being handled; return its id.

        With the journal the event is stored in the same group commit that precedes the done
        mark of the event being handled; published from an intent handler, its key and id derive
        from that intent's id, so a replay of the intent publishes it once.
        """
        cause = current_cause.get()
        if self.events is None:
            return self.bus.publish(
                self.role, event_type, data or {}, source=f"role:{self.role}", parent_id=cause
            )
        sequence = cause_sequence.get()
        key = f"{cause}:publish:{next(sequence)}" if cause and sequence is not None else None
        event_id = derived_event_id(key) if key is not None else new_id("evt")
        stored = self.events.submit(
            self.role,
            event_type,
            data or {},
            source=f"role:{self.role}",
            parent_id=cause,
            key=key,
            event_id=event_id,
        )
        stored.add_done_callback(_log_unstored)
        return event_id


def _log_unstored(stored: Any) -> None:
    if not stored.cancelled() and stored.exception() is not None:
        structlog.get_logger("intentd.role").error(
            "published_event_not_stored", error=str(stored.exception())
        )
