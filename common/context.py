"""The context every event handler receives next to the event data."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EventContext:
    """Where an event came from and what caused it; ``parent_id`` links a chain of events."""

    event_id: str
    event_type: str
    source: str
    timestamp: float
    channel_id: str | None = None
    user_id: str | None = None
    parent_id: str | None = None
    attempt: int = 1


def context_value(context: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from an EventContext, any object with that attribute, or a mapping."""
    if isinstance(context, dict):
        return context.get(name, default)
    return getattr(context, name, default)
