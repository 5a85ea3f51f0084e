"""Broken on purpose: several problems at once, all reported together."""

ROLE_CONFIG = {"name": "many_problems", "version": "one", "description": "x", "llm_type": "WEAK"}


def handle_tick(event_data):
    return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"fast-tick": handle_tick}, "tools": [], "intents": {}}
