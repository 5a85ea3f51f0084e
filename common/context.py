"""The context every event handler receives next to the event data."""

from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# The id of the intent whose handler is running now, so what that handler publishes through its
# services names its cause without the role having to pass it along.
current_cause: ContextVar[str | None] = ContextVar("current_cause", default=None)
# Numbers the events that handler publishes, so each gets a key that a replay repeats.
cause_sequence: ContextVar[Iterator[int] | None] = ContextVar("cause_sequence", default=None)


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
    idempotency_key: str | None = None  # set: intents it produces get deterministic ids


def context_value(context: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from an EventContext, any object with that attribute, or a mapping."""
    if isinstance(context, dict):
        return context.get(name, default)
    return getattr(context, name, default)
