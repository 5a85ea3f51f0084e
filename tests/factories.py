"""Factories for test objects: ``make_<thing>(**overrides)``."""

from typing import Any

from common.intent_processor import IntentProcessor
from common.message_bus import MessageBus


def make_bus(**overrides: Any) -> tuple[MessageBus, IntentProcessor]:
    """Return a bus wired to a fresh IntentProcessor (in-memory audit, log notifications)."""
    processor = IntentProcessor()
    bus = MessageBus(processor, **overrides)
    processor.message_bus = bus
    return bus, processor
