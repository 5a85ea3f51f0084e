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
    "external_events": ["${event}"],  # posted with 'intentd emit' or POST /events
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
"""Tests for roles/${name}.py: run them with plain 'python -m pytest' (needs pytest-asyncio)."""

from pathlib import Path

import pytest

from common.intents import NotificationIntent
from common.testing import RoleHarness
from llm_provider.role_contract import check_role

ROLE_FILE = Path(__file__).resolve().parents[2] / "roles" / "${name}.py"


def test_role_passes_the_contract_checks():
    assert check_role(ROLE_FILE)[1] == []


@pytest.mark.asyncio
async def test_request_is_echoed_to_its_channel():
    role = RoleHarness(ROLE_FILE)
    intents = await role.event("${event}", {"text": "hello"}, channel_id="console", user_id="U1")
    expected = NotificationIntent(message="${name}: hello", channel="console", user_id="U1")
    assert intents == [expected]


@pytest.mark.asyncio
async def test_empty_request_asks_for_nothing():
    assert await RoleHarness(ROLE_FILE).event("${event}", {"text": "  "}) == []


@pytest.mark.asyncio
async def test_note_from_the_tool_is_kept_in_the_role_store():
    role = RoleHarness(ROLE_FILE)
    reply = await role.module.${name}_note(key="k", text="v")
    await role.carry_out(reply["intent"])
    assert (reply["success"], await role.services.kv.get("k")) == (True, "v")


@pytest.mark.asyncio
async def test_tool_refuses_an_empty_note():
    reply = await RoleHarness(ROLE_FILE).module.${name}_note(key="", text="x")
    assert (reply["success"], "intent" in reply) == (False, False)
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
