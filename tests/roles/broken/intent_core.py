"""Broken on purpose: claims a core intent, which would take every role's notifications."""

from common.intents import NotificationIntent

ROLE_CONFIG = {"name": "intent_core", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


async def process_note(intent):
    return None


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "tools": [], "intents": {NotificationIntent: process_note}}
