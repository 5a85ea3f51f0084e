"""Factories for test objects: ``make_<thing>(**overrides)``."""

from typing import Any

from common.context import EventContext
from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus
from tests.fakes.clock import START


def make_context(**overrides: Any) -> EventContext:
    """Return an EventContext with readable defaults."""
    fields: dict[str, Any] = {
        "event_id": "evt-test-1",
        "event_type": "TEST_EVENT",
        "source": "test",
        "timestamp": START,
        "channel_id": "console",
        "user_id": "U1",
        "parent_id": None,
    }
    fields.update(overrides)
    return EventContext(**fields)


def make_bus(**overrides: Any) -> tuple[MessageBus, IntentProcessor]:
    """Return a bus wired to a fresh IntentProcessor (in-memory audit, log notifications)."""
    processor = IntentProcessor()
    bus = MessageBus(processor, **overrides)
    processor.message_bus = bus
    return bus, processor
