"""Broken on purpose: ROLE_CONFIG values of the wrong shape."""

ROLE_CONFIG = {
    "name": "bad_config_values",
    "version": "1.0",
    "llm_type": "SMART",
    "fast_reply": "yes",
    "colour": "blue",
}


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "tools": [], "intents": {}}
