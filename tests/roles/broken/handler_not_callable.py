"""Broken on purpose: maps an event to a string instead of a function."""

ROLE_CONFIG = {"name": "handler_not_callable", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"TIMER_EXPIRED": "handle_timer_expired"}, "tools": [], "intents": {}}
