"""Broken on purpose: calls a web service with httpx from a handler."""

import httpx

ROLE_CONFIG = {"name": "network_httpx", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


def handle_tick(event_data, context):
    httpx.get("https://status.example.com/ping")
    return []


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"HEARTBEAT_TICK": handle_tick}, "tools": [], "intents": {}}
