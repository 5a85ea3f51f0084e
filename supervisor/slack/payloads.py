"""Slack payloads turned into intentd event data: pure functions, shared by Socket Mode and HTTP.

Rules kept here:
- App mentions, direct messages and slash commands become ``USER_REQUEST`` data with
  ``channel_id`` ``slack:<channel>/<thread_ts>`` (a slash command has no thread:
  ``slack:<channel>``), ``user_id`` and ``text``; the bot's own messages, other bots, edits and
  other events give None.
- A payload meant for us that lacks what an answer needs (its channel, its message ts) raises
  MalformedPayload naming what is missing; it never becomes an address such as ``slack:None``.
- Interactions (``block_actions``, ``view_submission``...) become ``SLACK_INTERACTION`` data: the
  kind, who, where, and each action's id and value or the submitted view's values.
- ``clean`` replaces lone UTF-16 surrogates (which JSON allows and UTF-8 cannot store) with
  U+FFFD in every string of a decoded payload, so any text Slack delivers can be answered.
"""

import re
from typing import Any

_LEADING_MENTION = re.compile(r"^\s*<@[A-Z0-9]+>\s*")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads already joined every valid pair


class MalformedPayload(ValueError):
    """A payload meant for us lacks a field an answer needs; ``str()`` is a short reason code."""


def clean(value: Any) -> Any:
    """Return ``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {clean(key): clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


def user_request(
    kind: str, payload: dict[str, Any], bot_user_id: str | None
) -> dict[str, Any] | None:
    """Return USER_REQUEST data for a payload, or None if it is not for us."""
    if kind == "slash_commands":
        channel = _text(payload.get("channel_id"))
        if not channel:
            raise MalformedPayload("no_channel")
        return {
            "channel_id": f"slack:{channel}",
            "user_id": payload.get("user_id"),
            "text": _text(payload.get("text")),
            "command": payload.get("command"),
            "source": "slack",
        }
    if kind != "events_api":
        return None
    event = payload.get("event")
    if not isinstance(event, dict):
        raise MalformedPayload("no_event")
    if event.get("bot_id") or event.get("subtype") or event.get("user") in (None, bot_user_id):
        return None
    mention = event.get("type") == "app_mention"
    direct = event.get("type") == "message" and event.get("channel_type") == "im"
    if not (mention or direct):
        return None
    channel = _text(event.get("channel"))
    thread_ts = _text(event.get("thread_ts") or event.get("ts"))
    if not channel:
        raise MalformedPayload("no_channel")
    if not thread_ts:
        raise MalformedPayload("no_ts")
    return {
        "channel_id": f"slack:{channel}/{thread_ts}",
        "user_id": event.get("user"),
        "text": _LEADING_MENTION.sub("", _text(event.get("text")), count=1),
        "source": "slack",
    }


def interaction(payload: dict[str, Any]) -> dict[str, Any]:
    """Return SLACK_INTERACTION data for an interactivity payload."""
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedPayload("no_type")
    channel = _text(_field(payload, "container", "channel_id")) or _text(
        _field(payload, "channel", "id")
    )
    message_ts = _text(_field(payload, "container", "message_ts"))
    where = (
        f"slack:{channel}/{message_ts}"
        if channel and message_ts
        else (f"slack:{channel}" if channel else None)
    )
    actions = payload.get("actions")
    return {
        "kind": kind,
        "user_id": _field(payload, "user", "id"),
        "channel_id": where,
        "actions": [_action(a) for a in actions if isinstance(a, dict)]
        if isinstance(actions, list)
        else [],
        "callback_id": _field(payload, "view", "callback_id") or payload.get("callback_id"),
        "values": _view_values(payload.get("view")),
        "source": "slack",
    }


def _action(action: dict[str, Any]) -> dict[str, Any]:
    selected = action.get("selected_option")
    return {
        "action_id": action.get("action_id"),
        "block_id": action.get("block_id"),
        "value": action.get("value")
        if "value" in action
        else (selected.get("value") if isinstance(selected, dict) else None),
    }


def _view_values(view: Any) -> dict[str, dict[str, Any]]:
    """Flatten a submitted view's state to ``{block_id: {action_id: value}}``."""
    values = _field(view, "state", "values")
    if not isinstance(values, dict):
        return {}
    flat: dict[str, dict[str, Any]] = {}
    for block_id, block in values.items():
        if isinstance(block, dict):
            flat[block_id] = {
                action_id: _action({"action_id": action_id, **element}).get("value")
                for action_id, element in block.items()
                if isinstance(element, dict)
            }
    return flat


def _field(payload: Any, *path: str) -> Any:
    value: Any = payload
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
