"""Broken on purpose: register_role() raises."""

ROLE_CONFIG = {"name": "register_raises", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def register_role():
    handlers = {}
    return {"config": ROLE_CONFIG, "event_handlers": handlers["missing"]}
