"""Broken on purpose: register_role() lacks 'tools' and has an unknown 'handlers' key."""

ROLE_CONFIG = {"name": "missing_and_unknown_keys", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "intents": {}, "handlers": {}}
