"""The one template ``intentd new-role NAME`` writes: a role file and its test."""

import string

ROLE_TEMPLATE = string.Template('''\
"""${title}: replies to ${event} events and keeps notes the model asks for.

Reacts to ${event} (data ``{"text": ...}``) with a NotificationIntent; its tool asks for a
${cls}NoteIntent, which the intent handler keeps in the role's key-value store.
"""

from dataclasses import dataclass

from strands import tool

from common.intents import Intent, NotificationIntent

ROLE_CONFIG = {
    "name": "${name}",
    "version": "0.1.0",
    "description": "Reply to ${event} events and keep notes.",
    "llm_type": "WEAK",
    "fast_reply": True,
    "when_to_use": "When the user asks to note something for later.",
}

${event} = "${event}"


@dataclass
class ${cls}NoteIntent(Intent):
    """Keep ``text`` under ``key`` in the role's key-value store."""

    key: str
    text: str

    def validate(self) -> bool:
        return bool(self.key.strip()) and bool(self.text.strip())


def handle_${name}_requested(event_data, context):
    """Reply with the text of the request; nothing when there is no text."""
    text = event_data.get("text", "") if isinstance(event_data, dict) else ""
    if not text.strip():
        return []
    channel = context.channel_id or "console"
    reply = NotificationIntent(message=f"${name}: {text}", channel=channel, user_id=context.user_id)
    return [reply]


@tool
async def ${name}_note(key: str, text: str) -> dict:
    """Keep a note for later.

    Args:
        key: a short name for the note
        text: what to remember
    """
    intent = ${cls}NoteIntent(key=key, text=text)
    if not intent.validate():
        return {"success": False, "message": "key and text must not be empty"}
    return {"success": True, "message": f"kept note {key!r}", "intent": intent}


async def process_${name}_note(intent, services):
    """Keep the note in this role's key-value store."""
    await services.kv.set(intent.key, intent.text)


def register_role():
    return {
        "config": ROLE_CONFIG,
        "event_handlers": {${event}: handle_${name}_requested},
        "tools": [${name}_note],
        "intents": {${cls}NoteIntent: process_${name}_note},
    }
''')

TEST_TEMPLATE = string.Template('''\
"""Tests for roles/${name}.py: call each handler directly and compare with one assert."""

from pathlib import Path

from common.context import EventContext
from common.intents import NotificationIntent
from common.message_bus import MessageBus
from llm_provider.role_contract import check_role
from llm_provider.role_import import import_role_module
from supervisor.store.kv import KVStore, SqliteKV
from supervisor.services import DaemonServices
from supervisor.store.sqlite import Store

ROLE_FILE = Path(__file__).resolve().parents[2] / "roles" / "${name}.py"
role = import_role_module(ROLE_FILE)


def make_context(**overrides):
    fields = {"event_id": "evt-1", "event_type": "${event}", "source": "test", "timestamp": 0.0}
    return EventContext(**{**fields, "channel_id": "console", "user_id": "U1", **overrides})


def test_role_passes_the_contract_checks():
    assert check_role(ROLE_FILE)[1] == []


def test_request_is_echoed_to_its_channel():
    intents = role.handle_${name}_requested({"text": "hello"}, make_context())
    expected = NotificationIntent(message="${name}: hello", channel="console", user_id="U1")
    assert intents == [expected]


def test_empty_request_asks_for_nothing():
    assert role.handle_${name}_requested({"text": "  "}, make_context()) == []


async def test_note_intent_is_kept_in_the_role_store():
    kv = KVStore(SqliteKV(Store(":memory:"))).for_role("${name}")
    services = DaemonServices(role="${name}", bus=MessageBus(), timers=None, kv=kv)
    await role.process_${name}_note(role.${cls}NoteIntent(key="k", text="v"), services)
    assert await services.kv.get("k") == "v"


async def test_tool_refuses_an_empty_note():
    assert (await role.${name}_note(key="", text="x"))["success"] is False
''')


def render_role(name: str) -> str:
    """Return the source of a new role file called ``name``."""
    return ROLE_TEMPLATE.substitute(_fields(name))


def render_test(name: str) -> str:
    """Return the source of the test file for a new role called ``name``."""
    return TEST_TEMPLATE.substitute(_fields(name))


def _fields(name: str) -> dict[str, str]:
    words = name.split("_")
    return {
        "name": name,
        "title": " ".join(words).capitalize(),
        "cls": "".join(word.capitalize() for word in words),
        "event": f"{name.upper()}_REQUESTED",
    }
