"""Broken on purpose: reads the wall clock with time.time() in a handler."""

import time

from common.intents import NotificationIntent

ROLE_CONFIG = {"name": "clock_time", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_tick(event_data, context):
    started = time.time()
    return [NotificationIntent(message=f"tick at {started}", channel="console")]


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"HEARTBEAT_TICK": handle_tick}, "tools": [], "intents": {}}
