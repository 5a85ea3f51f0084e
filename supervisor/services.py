"""The daemon's RoleServices: what a role's intent handlers may use, handed in as an argument.

The contract a role sees is ``common.role_api.RoleServices``; this is the daemon's implementation
(and the constructor a test of an intent handler can use directly).
"""

from dataclasses import dataclass, field
from typing import Any

import structlog

from common.context import current_cause
from common.message_bus import MessageBus
from common.role_api import RoleKV, RoleLogger, Timers


@dataclass
class DaemonServices:
    """The infrastructure one role may use from its intent handlers."""

    role: str
    bus: MessageBus
    timers: Timers
    kv: RoleKV
    settings: dict[str, Any] = field(default_factory=dict)
    log: RoleLogger = field(default=None)  # type: ignore[assignment]  # filled in below

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = structlog.get_logger("intentd.role").bind(role=self.role)

    def publish(self, event_type: str, data: dict[str, Any] | None = None) -> str:
        """Publish an event caused by the intent being handled; return its id."""
        return self.bus.publish(
            self.role,
            event_type,
            data or {},
            source=f"role:{self.role}",
            parent_id=current_cause.get(),
        )
