"""Broken on purpose: prints from a handler."""

ROLE_CONFIG = {"name": "print_in_handler", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_tick(event_data, context):
    print("tick", event_data)
    return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"HEARTBEAT_TICK": handle_tick}, "tools": [], "intents": {}}
