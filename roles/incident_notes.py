"""Incident notes: keeps a timeline of notes per incident and lets the model summarise it.

Reacts to no event; its tools ask for IncidentNoteIntent add/read/close, which the intent handler
keeps in the role's store, so a summary is built from what was really noted, never invented.
"""

from dataclasses import dataclass
from typing import Any

from strands import tool

from common.clock import utc_iso
from common.intents import Intent
from common.role_api import RoleServices

ROLE_CONFIG = {
    "name": "incident_notes",
    "version": "1.0.0",
    "description": "Keeps a timeline of notes for each incident and summarises it on request.",
    "llm_type": "DEFAULT",
    "fast_reply": True,
    "when_to_use": (
        "The user reports what is happening in an incident, asks to note something for an "
        "incident, or asks for an incident's timeline, summary or to close it."
    ),
    "parameters": {
        "incident": {
            "type": "string",
            "description": "a short incident name, e.g. 'db-failover'",
            "examples": ["db-failover", "checkout-500s"],
        },
    },
    "system_prompt": (
        "You keep incident timelines. Record each new fact the user states with "
        "add_incident_note (one fact per note). Before any summary, read the notes with "
        "read_incident_notes and summarise only what they say: times, who, what changed, what is "
        "still open. Name the incident in lowercase-with-dashes. Be brief."
    ),
}

ACTIONS = ("add", "read", "close")


@dataclass
class IncidentNoteIntent(Intent):
    """Add a note to, read, or close the timeline of ``incident``."""

    action: str
    incident: str
    text: str = ""
    user_id: str | None = None
    channel_id: str | None = None

    def validate(self) -> bool:
        if self.action not in ACTIONS or not _key(self.incident):
            return False
        return self.action != "add" or bool(self.text.strip())


# -- tools ------------------------------------------------------------------------------------


@tool
async def add_incident_note(incident: str, text: str) -> dict[str, Any]:
    """Add one fact to an incident's timeline (the incident is opened if it is new).

    Args:
        incident: The incident's short name, e.g. "db-failover".
        text: The fact, in one sentence, e.g. "primary failed over to replica 2 at 14:02".
    """
    if not text.strip():
        return {"success": False, "message": "the note is empty; say what happened"}
    return {
        "success": True,
        "message": f"Adding a note to incident {incident!r}.",
        "intent": IncidentNoteIntent(action="add", incident=incident, text=text.strip()),
    }


@tool
async def read_incident_notes(incident: str) -> dict[str, Any]:
    """Return an incident's timeline: every note with its time and author.

    Args:
        incident: The incident's short name, e.g. "db-failover".
    """
    return {
        "success": True,
        "message": f"Reading incident {incident!r}.",
        "intent": IncidentNoteIntent(action="read", incident=incident),
    }


@tool
async def close_incident(incident: str) -> dict[str, Any]:
    """Close an incident: its timeline is kept, and later notes are refused.

    Args:
        incident: The incident's short name, e.g. "db-failover".
    """
    return {
        "success": True,
        "message": f"Closing incident {incident!r}.",
        "intent": IncidentNoteIntent(action="close", incident=incident),
    }


# -- private helpers --------------------------------------------------------------------------


def _key(incident: str) -> str:
    """Return the store key for ``incident`` ("DB Failover" and "db-failover" are one)."""
    words = "".join(c if c.isalnum() else " " for c in incident.lower()).split()
    return "-".join(words)


def _timeline(notes: list[dict[str, Any]]) -> str:
    """Return the notes as lines "time (author): text"."""
    return "\n".join(f"{n['at']} ({n.get('by') or 'unknown'}): {n['text']}" for n in notes)


# -- intent handlers --------------------------------------------------------------------------


async def process_incident_note(
    intent: IncidentNoteIntent, services: RoleServices
) -> dict[str, Any]:
    """Keep or read the incident's timeline in the role's store; return what really happened."""
    name = _key(intent.incident)
    record = await services.kv.get(name)
    record = record or {"notes": [], "closed": False, "channel": intent.channel_id}
    if intent.action == "read":
        if not record["notes"]:
            return {"message": f"Incident {name!r} has no notes.", "incident": name, "notes": []}
        return {
            "message": f"Incident {name!r} ({'closed' if record['closed'] else 'open'}):\n"
            + _timeline(record["notes"]),
            "incident": name,
            "closed": record["closed"],
            "notes": record["notes"],
        }
    if record["closed"]:
        raise ValueError(f"incident {name!r} is closed; open a new incident name for new notes")
    if intent.action == "close":
        record["closed"] = True
        await services.kv.set(name, record)
        return {"message": f"Incident {name!r} closed with {len(record['notes'])} note(s).",
                "incident": name}  # fmt: skip
    note = {
        "at": utc_iso(intent.created_at),
        "by": intent.user_id,
        "text": intent.text,
    }
    record["notes"].append(note)
    await services.kv.set(name, record)
    count = len(record["notes"])
    return {"message": f"Noted in incident {name!r} (note {count}).", "incident": name,
            "note": note}  # fmt: skip


def register_role() -> dict[str, Any]:
    """Return the incident notes role's wiring."""
    return {
        "config": ROLE_CONFIG,
        "event_handlers": {},
        "tools": [add_incident_note, read_incident_notes, close_incident],
        "intents": {IncidentNoteIntent: process_incident_note},
    }
