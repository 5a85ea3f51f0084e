"""What the admin channel is told when a role is loaded, fails, is quarantined or unloaded.

The announcer is an ordinary pure event handler: the registry publishes ``ROLE_*`` events, the
announcer turns them into NotificationIntents, and the IntentProcessor delivers them.
"""

from typing import Any

from common.context import context_value
from common.events import (
    ROLE_FAILED,
    ROLE_LOADED,
    ROLE_QUARANTINED,
    ROLE_RELOAD_FAILED,
    ROLE_UNLOADED,
)
from common.intents import Intent, NotificationIntent
from common.types import EventHandler

ANNOUNCED_EVENTS = (ROLE_LOADED, ROLE_FAILED, ROLE_RELOAD_FAILED, ROLE_QUARANTINED, ROLE_UNLOADED)


def make_announcer(channel: str) -> EventHandler:
    """Return an event handler that announces role lifecycle events on ``channel``."""

    def announce_role_event(event_data: Any, context: Any) -> list[Intent]:
        event_type = context_value(context, "event_type")
        message = describe(event_type, event_data if isinstance(event_data, dict) else {})
        if message is None:
            return []
        priority = "medium" if event_type in (ROLE_LOADED, ROLE_UNLOADED) else "high"
        return [NotificationIntent(message=message, channel=channel, priority=priority)]

    return announce_role_event


def describe(event_type: str, data: dict[str, Any]) -> str | None:
    """Return the announcement for a ROLE_* event, or None when it is not worth one."""
    role = data.get("role")
    problems = "\n".join(data.get("problems", []))
    if event_type == ROLE_FAILED:
        return f"role {role!r} was not loaded; its file fails the role checks:\n{problems}"
    if event_type == ROLE_RELOAD_FAILED:
        return (
            f"role {role!r} keeps running its last good version; the edited file fails "
            f"the role checks:\n{problems}"
        )
    if event_type == ROLE_QUARANTINED:
        return (
            f"role {role!r} is quarantined after {data.get('failures')} handler failures within "
            f"{data.get('window')} s (last: {data.get('error')}); edit its file to load it again"
        )
    if event_type == ROLE_UNLOADED:
        return f"role {role!r} was unloaded because {data.get('reason')}"
    if event_type == ROLE_LOADED and data.get("reloaded"):
        return f"role {role!r} was reloaded (version {data.get('version')})"
    return None
