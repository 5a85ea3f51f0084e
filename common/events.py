"""Event names: UPPER_SNAKE_CASE facts or ticks, defined once here and checked everywhere.

Publishing or subscribing a malformed name (``workflow_completed``, ``Timer-Expired``) is an
error, never silence: an event published in one spelling and subscribed in another would never
reach its handler.

The daemon owns the events it publishes about itself (``DAEMON_EVENTS`` and every name starting
with one of ``DAEMON_PREFIXES``): outside sources (HTTP, ``intentd emit``, Slack) may not publish
them, so nobody outside can fire a timer, fake a heartbeat or announce a role.
"""

import difflib
import re

from common.errors import EventNameError, EventOwnedError

HEARTBEAT_TICK = "HEARTBEAT_TICK"
FAST_HEARTBEAT_TICK = "FAST_HEARTBEAT_TICK"
TIMER_EXPIRED = "TIMER_EXPIRED"
TIMER_DELIVERY_FAILING = "TIMER_DELIVERY_FAILING"
USER_REQUEST = "USER_REQUEST"
WORKFLOW_STARTED = "WORKFLOW_STARTED"
WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
WORKFLOW_FAILED = "WORKFLOW_FAILED"
ROLE_LOADED = "ROLE_LOADED"
ROLE_FAILED = "ROLE_FAILED"
ROLE_RELOAD_FAILED = "ROLE_RELOAD_FAILED"
ROLE_QUARANTINED = "ROLE_QUARANTINED"
ROLE_UNLOADED = "ROLE_UNLOADED"
NOTIFICATION_DEAD_LETTERED = "NOTIFICATION_DEAD_LETTERED"
SLACK_INTERACTION = "SLACK_INTERACTION"

# every constant above is named after its value, so the known names need no second list
KNOWN_EVENTS = frozenset(value for key, value in list(globals().items()) if key == value)
DAEMON_EVENTS = frozenset({
    HEARTBEAT_TICK, FAST_HEARTBEAT_TICK, TIMER_EXPIRED, TIMER_DELIVERY_FAILING,
    WORKFLOW_STARTED, WORKFLOW_COMPLETED, WORKFLOW_FAILED,
    ROLE_LOADED, ROLE_FAILED, ROLE_RELOAD_FAILED, ROLE_QUARANTINED, ROLE_UNLOADED,
    NOTIFICATION_DEAD_LETTERED,
})  # fmt: skip
DAEMON_PREFIXES = ("ROLE_", "WORKFLOW_", "NOTIFICATION_")
MISSPELLING_RATIO = 0.85  # TIMER_EXPIERD is 0.92 from TIMER_EXPIRED; TIMER_SNOOZED is 0.62

_EVENT_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
MAX_EVENT_NAME_LENGTH = 128


_checked: set[str] = set()  # names already found valid: the bus checks every publish
_CHECKED_LIMIT = 4096


def seen_valid(event_type: object) -> bool:
    """Return True when ``event_type`` was already found valid (a cheap check for hot paths)."""
    return type(event_type) is str and event_type in _checked


def check_event_type(event_type: object, where: str = "event type") -> str:
    """Return ``event_type`` if it is an UPPER_SNAKE_CASE name; raise EventNameError otherwise."""
    if type(event_type) is str and event_type in _checked:
        return event_type
    if isinstance(event_type, str) and len(event_type) <= MAX_EVENT_NAME_LENGTH:
        if _EVENT_NAME.fullmatch(event_type):
            if len(_checked) < _CHECKED_LIMIT:
                _checked.add(event_type)
            return event_type
        suggestion = re.sub(r"[^A-Za-z0-9]+", "_", event_type).strip("_").upper()
        if suggestion and _EVENT_NAME.fullmatch(suggestion):
            raise EventNameError(
                f"{where} {event_type!r} is not an UPPER_SNAKE_CASE name; use {suggestion!r}"
            )
    raise EventNameError(
        f"{where} {event_type!r} is not an UPPER_SNAKE_CASE name of at most "
        f"{MAX_EVENT_NAME_LENGTH} characters, such as 'TIMER_EXPIRED'"
    )


def is_daemon_event(event_type: str) -> bool:
    """Return whether only the daemon publishes ``event_type``."""
    return event_type in DAEMON_EVENTS or event_type.startswith(DAEMON_PREFIXES)


def check_outside_event(event_type: str) -> str:
    """Return ``event_type`` if an outside source may publish it; raise EventOwnedError if not."""
    if is_daemon_event(event_type):
        raise EventOwnedError(
            f"event type {event_type!r} is published by the daemon only (see DAEMON_EVENTS in "
            "common/events.py); publish USER_REQUEST or an event type of your own instead"
        )
    return event_type


def misspelt_event(event_type: str) -> str | None:
    """Return the known event name ``event_type`` is likely a typo of, or None if it is not one."""
    if event_type in KNOWN_EVENTS:
        return None
    close = difflib.get_close_matches(event_type, KNOWN_EVENTS, n=1, cutoff=MISSPELLING_RATIO)
    return close[0] if close else None
