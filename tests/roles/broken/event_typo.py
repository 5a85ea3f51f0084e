"""Broken on purpose: subscribes to a misspelt known event, so its handler would never run."""

ROLE_CONFIG = {"name": "event_typo", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_expired(event_data, context):
    return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"TIMER_EXPIERD": handle_expired}, "tools": [], "intents": {}}
