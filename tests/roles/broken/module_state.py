"""Broken on purpose: keeps a cooldown in a module-level dict and a global counter."""

ROLE_CONFIG = {"name": "module_state", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}

LAST_ALERT = {}
ALERTS = 0


def handle_disk_alert(event_data, context):
    global ALERTS
    ALERTS += 1
    LAST_ALERT[event_data["host"]] = context.timestamp
    return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"DISK_ALERT": handle_disk_alert}, "tools": [], "intents": {}}
