"""What a role's intent handler may use, handed in as an argument (never through globals)."""

from dataclasses import dataclass, field
from typing import Any

import structlog

from common.context import current_cause


@dataclass
class RoleServices:
    """The infrastructure one role may use from its intent handlers."""

    role: str
    bus: Any
    settings: dict[str, Any] = field(default_factory=dict)
    timers: Any = None
    kv: Any = None
    log: Any = None

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = structlog.get_logger("intentd.role").bind(role=self.role)

    def publish(self, event_type: str, data: dict[str, Any] | None = None) -> str:
        """Publish an event on behalf of this role; return its id."""
        return self.bus.publish(
            self.role,
            event_type,
            data or {},
            source=f"role:{self.role}",
            parent_id=current_cause.get(),
        )
