"""Broken on purpose: the handler builds its intents and forgets to return them."""

from common.intents import NotificationIntent

ROLE_CONFIG = {"name": "returns_none_sync", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_tick(event_data, context):
    intents = [NotificationIntent(message="tick", channel="console")]
    if not event_data:
        return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"HEARTBEAT_TICK": handle_tick}, "tools": [], "intents": {}}
