"""Broken on purpose: an event handler that takes one parameter."""

ROLE_CONFIG = {"name": "handler_wrong_arity", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_timer_expired(event_data):
    return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"TIMER_EXPIRED": handle_timer_expired}, "tools": [], "intents": {}}
