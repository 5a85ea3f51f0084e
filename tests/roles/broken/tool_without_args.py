"""Broken on purpose: a tool whose docstring does not describe its arguments."""

from strands import tool

ROLE_CONFIG = {"name": "tool_without_args", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


@tool
async def summarise(text: str, words: int = 50) -> dict:
    """Summarise a text for the channel."""
    return {"success": True, "message": text[:words]}


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "tools": [summarise], "intents": {}}
