"""Broken on purpose: a helper of the handler reads the wall clock with datetime.now()."""

from datetime import UTC, datetime

from common.intents import NotificationIntent

ROLE_CONFIG = {"name": "clock_datetime", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_tick(event_data, context):
    return [NotificationIntent(message=f"tick at {_stamp()}", channel="console")]


def _stamp():
    return datetime.now(UTC).isoformat()


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"HEARTBEAT_TICK": handle_tick}, "tools": [], "intents": {}}
