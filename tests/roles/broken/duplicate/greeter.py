"""Broken on purpose when checked next to another greeter.py: role names must be unique."""

ROLE_CONFIG = {"name": "greeter", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "tools": [], "intents": {}}
