"""Router: turns every USER_REQUEST into a "route" workflow, answered in the same channel/thread.

Reacts to USER_REQUEST (data {"text", "channel_id", "user_id"}; a plain string is the text) and
asks for WorkflowIntent("route", ...): the workflow engine asks the WEAK model which fast_reply
role fits, then runs that role's agent (see llm_provider/routing.py and router.* in config.yaml).
A request without text gets a NotificationIntent asking for some.
"""

from typing import Any

from common.context import context_value
from common.event_data import optional_field
from common.events import USER_REQUEST
from common.intents import Intent, NotificationIntent, WorkflowIntent
from common.role_api import Context

ROLE_CONFIG = {
    "name": "router",
    "version": "1.0.0",
    "description": "Sends each user request to the role best able to answer it.",
    "llm_type": "WEAK",
    "fast_reply": False,
    "when_to_use": "Never chosen by the router itself; it handles USER_REQUEST events.",
}

EMPTY_REPLY = "Your request had no text; write what you would like me to do."


# -- event handlers ---------------------------------------------------------------------------


def handle_user_request(event_data: Any, context: Context) -> list[Intent]:
    """Ask for a routed workflow answering the request where it was asked."""
    data = event_data if isinstance(event_data, dict) else {"text": event_data}
    text = data.get("text")
    channel_id, user_id, role = (
        optional_field(data, key, str, USER_REQUEST) for key in ("channel_id", "user_id", "role")
    )
    channel = channel_id or context_value(context, "channel_id") or "default"
    user_id = user_id or context_value(context, "user_id")
    if not isinstance(text, str) or not text.strip():
        return [NotificationIntent(message=EMPTY_REPLY, channel=channel, user_id=user_id)]
    parameters = {"request": text.strip(), "channel_id": channel, "user_id": user_id}
    if role:
        parameters["role"] = role
    return [WorkflowIntent(workflow_type="route", parameters=parameters)]


def register_role() -> dict[str, Any]:
    """Return the router role's wiring."""
    return {
        "config": ROLE_CONFIG,
        "event_handlers": {"USER_REQUEST": handle_user_request},
        "tools": [],
        "intents": {},
    }
