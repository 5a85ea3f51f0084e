"""Broken on purpose: a tool without the strands @tool decorator."""

ROLE_CONFIG = {"name": "tool_not_strands", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


async def set_alarm(when: str) -> dict:
    """Set an alarm."""
    return {"success": True, "message": "set"}


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {}, "tools": [set_alarm], "intents": {}}
