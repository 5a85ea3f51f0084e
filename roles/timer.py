"""Timers: set, cancel and list reminders; when one expires, notify its channel and audit it.

Reacts to TIMER_EXPIRED (notify + audit); asks for TimerIntent create/cancel/check (check lists
the asking user's pending timers), carried out through ``services.timers``. The timer service
re-checks the store on every fast heartbeat itself, whatever happens to this role.
"""

import re
from dataclasses import dataclass
from typing import Any

from strands import tool

from common.context import context_value
from common.errors import TimerError
from common.event_data import optional_field, refuse
from common.events import TIMER_EXPIRED
from common.intents import AuditIntent, Intent, NotificationIntent
from common.role_api import MAX_TIMER_SECONDS, Context, RoleServices

ROLE_CONFIG = {
    "name": "timer",
    "version": "1.0.0",
    "description": "Sets, cancels and lists timers; notifies the user when one expires.",
    "llm_type": "WEAK",
    "fast_reply": True,
    "when_to_use": "The user wants a reminder or countdown, or asks about or cancels a timer.",
}

ACTIONS = ("create", "cancel", "check")


@dataclass
class TimerIntent(Intent):
    """Create or cancel a timer, or check (list) the user's pending timers."""

    action: str
    timer_id: str | None = None
    duration: str | int | float | None = None
    label: str | None = None
    channel_id: str | None = None
    user_id: str | None = None

    def validate(self) -> bool:
        return self.action in ACTIONS


# -- event handlers ---------------------------------------------------------------------------


def handle_timer_expiry(event_data: Any, context: Context) -> list[Intent]:
    """Notify the timer's channel (or the default one) and audit the expiry."""
    data = _expiry_data(event_data)
    label = data["label"] or data["original_request"] or ""
    channel = data["channel_id"] or context_value(context, "channel_id") or "default"
    user_id = data["user_id"] or context_value(context, "user_id")
    message = f"Timer expired: {label}" if label else "Your timer has expired."
    late_by = data["late_by_s"] or 0
    if late_by >= 60:
        message += f" (due {_describe(late_by)} ago, while intentd was not running)"
    return [
        NotificationIntent(message=message, channel=channel, user_id=user_id, priority="medium"),
        AuditIntent(
            action="timer_expired",
            details={
                "timer_id": data["timer_id"],
                "label": label,
                "channel": channel,
                "late_by_s": late_by,
                "attempt": data["attempt"] or context_value(context, "attempt", 1),
            },
            user_id=user_id,
        ),
    ]


def handle_heartbeat_monitoring(event_data: Any, context: Context) -> list[Intent]:
    """Return nothing: the timer service itself re-checks the store on every fast heartbeat."""
    return []


# -- tools ------------------------------------------------------------------------------------


@tool
async def set_timer(duration: str, label: str = "") -> dict[str, Any]:
    """Set a timer that notifies the user when it expires.

    Args:
        duration: How long until it expires, e.g. "90s", "5m", "1h30m", "10 minutes", "2 hours".
        label: What the timer is for, shown when it expires, e.g. "tea".
    """
    try:
        _parse_duration(duration)
    except ValueError as err:
        return {"success": False, "message": str(err)}
    return {
        "success": True,
        "message": f"Setting a timer for {duration}.",
        "intent": TimerIntent(action="create", duration=duration, label=label),
    }


@tool
async def cancel_timer(timer_id: str) -> dict[str, Any]:
    """Cancel a pending timer.

    Args:
        timer_id: The id of the timer, as given by set_timer or list_timers.
    """
    return {
        "success": True,
        "message": f"Cancelling timer {timer_id}.",
        "intent": TimerIntent(action="cancel", timer_id=timer_id),
    }


@tool
async def list_timers() -> dict[str, Any]:
    """List the user's pending timers with their ids, labels and due times."""
    return {
        "success": True,
        "message": "Listing pending timers.",
        "intent": TimerIntent(action="check"),
    }


# -- private helpers --------------------------------------------------------------------------

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}  # fmt: skip
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PARTS = re.compile(r"(?:\d+(?:\.\d+)?\s*[a-z]+\s*,?\s*(?:and\s+)?)+")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")


def _parse_duration(text: Any) -> float:
    """Return ``text`` ("90", "5m", "1h 15m", "2 hours"...) in seconds; raise ValueError if bad."""
    hint = "use a positive duration such as '90s', '5m', '1h30m' or '2 hours'"
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise ValueError(f"duration {text!r} is not text or a number; {hint}")
    words = str(text).strip().lower()
    if words.startswith("-"):
        raise ValueError(f"duration {text!r} is negative; {hint}")
    if _NUMBER.fullmatch(words):
        seconds = float(words)
    elif _PARTS.fullmatch(words) and all(u in _UNITS for _, u in _PART.findall(words)):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(words))
    else:
        raise ValueError(f"duration {text!r} is not understood; {hint}")
    if seconds <= 0:
        raise ValueError(f"duration {text!r} is zero; {hint}")
    if seconds > MAX_TIMER_SECONDS:
        raise ValueError(f"duration {text!r} is longer than a year; {hint}")
    return seconds


def _expiry_data(event_data: Any) -> dict[str, Any]:
    """Return TIMER_EXPIRED data with every field checked; raise EventDataError if one is bad."""
    if isinstance(event_data, (list, tuple)):
        timer_id, request = [*event_data, None, None][:2]
        event_data = {"timer_id": timer_id, "label": request, "original_request": request}
    if not isinstance(event_data, dict):
        raise refuse(TIMER_EXPIRED, "an object or [timer_id, request]", event_data)
    texts = ("timer_id", "label", "original_request", "channel_id", "user_id")
    data = {key: optional_field(event_data, key, str, TIMER_EXPIRED) for key in texts}
    data["late_by_s"] = optional_field(
        event_data, "late_by_s", (int, float), TIMER_EXPIRED, "a number of seconds"
    )
    data["attempt"] = optional_field(event_data, "attempt", int, TIMER_EXPIRED)
    return data


def _describe(seconds: float) -> str:
    """Return ``seconds`` as "1h 5m", "5m 30s" or "45s"."""
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return " ".join(parts[:2]) or "0s"


# -- intent handlers --------------------------------------------------------------------------


async def process_timer(intent: TimerIntent, services: RoleServices) -> dict[str, Any]:
    """Carry out a TimerIntent through ``services.timers``; return what really happened."""
    timers = services.timers
    if intent.action == "create":
        try:
            seconds = _parse_duration(intent.duration)
        except ValueError as err:
            raise TimerError(str(err)) from err
        label = intent.label or ""
        timer_id = await timers.create(
            duration=seconds,
            label=label,
            channel_id=intent.channel_id,
            user_id=intent.user_id,
            original_request=label or f"timer for {intent.duration}",
            role=services.role,
        )
        timer = await timers.get(timer_id)
        if timer is None:
            raise TimerError(f"timer {timer_id!r} was not stored; check the daemon's store")
        due = timer.to_dict()["due"]
        return {
            "message": f"Timer {timer_id} set for {due} ({_describe(seconds)} from now).",
            "timer_id": timer_id,
            "due_at": due,
            "label": label,
        }
    if intent.action == "cancel":
        if not intent.timer_id:
            raise TimerError("TimerIntent cancel needs a timer_id; get one from list_timers")
        cancelled = await timers.cancel(intent.timer_id)
        return {"message": f"Timer {cancelled.timer_id} cancelled.", "timer_id": cancelled.timer_id}
    pending = [t.to_dict() for t in await timers.list(user_id=intent.user_id)]
    return {
        "pending": len(pending),
        "timers": [
            {"timer_id": t["timer_id"], "label": t["label"], "due_at": t["due"]} for t in pending
        ],
        "message": f"{len(pending)} pending timer(s)." if pending else "No pending timers.",
    }


def register_role() -> dict[str, Any]:
    """Return the timer role's wiring."""
    return {
        "config": ROLE_CONFIG,
        "event_handlers": {
            "TIMER_EXPIRED": handle_timer_expiry,
            "FAST_HEARTBEAT_TICK": handle_heartbeat_monitoring,
        },
        "tools": [set_timer, cancel_timer, list_timers],
        "intents": {TimerIntent: process_timer},
    }
