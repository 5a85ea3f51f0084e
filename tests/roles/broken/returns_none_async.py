"""Broken on purpose: an async handler that never returns its intents."""

import asyncio

from common.intents import NotificationIntent

ROLE_CONFIG = {"name": "returns_none_async", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


async def handle_tick(event_data, context):
    await asyncio.sleep(0)
    [NotificationIntent(message="tick", channel="console")]


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"HEARTBEAT_TICK": handle_tick}, "tools": [], "intents": {}}
