"""Broken on purpose: subscribes to a lowercase event name."""

ROLE_CONFIG = {"name": "lowercase_event", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_done(event_data, context):
    return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"workflow_completed": handle_done}, "tools": [], "intents": {}}
