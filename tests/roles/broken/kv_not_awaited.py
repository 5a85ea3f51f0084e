"""Broken on purpose: reads its key-value store without await."""

from dataclasses import dataclass

from common.intents import Intent

ROLE_CONFIG = {"name": "kv_not_awaited", "version": "1.0.0", "description": "x", "llm_type": "WEAK"}


@dataclass
class NoteIntent(Intent):
    text: str

    def validate(self):
        return bool(self.text)


def handle_tick(event_data, context):
    return [NoteIntent(text="tick")]


async def process_note(intent, services):
    notes = services.kv.get("notes", [])
    await services.kv.set("notes", [*notes, intent.text])


def register_role():
    return {"config": ROLE_CONFIG, "event_handlers": {"HEARTBEAT_TICK": handle_tick}, "tools": [], "intents": {NoteIntent: process_note}}
