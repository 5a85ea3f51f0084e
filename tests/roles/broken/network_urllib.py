"""Broken on purpose: calls a web service with urllib from a handler."""

from urllib.request import urlopen

ROLE_CONFIG = {"name": "network_urllib", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_tick(event_data, context):
    with urlopen("https://status.example.com/ping") as answer:
        answer.read()
    return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"HEARTBEAT_TICK": handle_tick}, "tools": [], "intents": {}}
