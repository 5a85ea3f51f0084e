"""The incident notes role: its intent handler over a real store, and its agent with a script."""

import json
from typing import Any

import pytest

from common.intents import WorkflowIntent
from llm_provider.scripted_model import ScriptedModel, Turn
from roles.incident_notes import (
    IncidentNoteIntent,
    _key,
    add_incident_note,
    process_incident_note,
)
from supervisor.services import DaemonServices
from supervisor.store.kv import KVStore, SqliteKV
from supervisor.store.sqlite import Store
from tests.workflow_parts import WorkflowParts


@pytest.fixture
def services() -> DaemonServices:
    kv = KVStore(SqliteKV(Store(":memory:"))).for_role("incident_notes")
    return DaemonServices(role="incident_notes", bus=None, timers=None, kv=kv)


def test_incident_names_are_one_key_however_they_are_written() -> None:
    assert [_key("DB Failover"), _key("db-failover"), _key(" db_failover!")] == ["db-failover"] * 3


def test_an_empty_note_or_unknown_action_is_invalid() -> None:
    assert not IncidentNoteIntent(action="add", incident="x", text=" ").validate()
    assert not IncidentNoteIntent(action="delete", incident="x").validate()
    assert not IncidentNoteIntent(action="read", incident="--").validate()
    assert IncidentNoteIntent(action="read", incident="x").validate()


async def test_notes_are_kept_in_order_and_read_back_as_a_timeline(
    services: DaemonServices,
) -> None:
    for text, user in (("primary failed over", "U1"), ("replica promoted", "U2")):
        await process_incident_note(
            IncidentNoteIntent(action="add", incident="DB failover", text=text, user_id=user),
            services,
        )
    read = await process_incident_note(
        IncidentNoteIntent(action="read", incident="db-failover"), services
    )
    assert [(n["by"], n["text"]) for n in read["notes"]] == [
        ("U1", "primary failed over"),
        ("U2", "replica promoted"),
    ]
    assert read["message"].startswith("Incident 'db-failover' (open):\n")
    assert read["message"].endswith("(U2): replica promoted")


async def test_a_closed_incident_refuses_new_notes(services: DaemonServices) -> None:
    await process_incident_note(IncidentNoteIntent("add", "x", text="a"), services)
    closed = await process_incident_note(IncidentNoteIntent("close", "x"), services)
    assert closed["message"] == "Incident 'x' closed with 1 note(s)."
    with pytest.raises(ValueError, match="incident 'x' is closed"):
        await process_incident_note(IncidentNoteIntent("add", "x", text="b"), services)


async def test_the_tool_refuses_an_empty_note_without_an_intent() -> None:
    assert await add_incident_note(incident="x", text="  ") == {
        "success": False,
        "message": "the note is empty; say what happened",
    }


def _ask(text: str) -> WorkflowIntent:
    return WorkflowIntent(
        workflow_type="incident_notes",
        parameters={"request": text, "channel_id": "slack:C9/5.5", "user_id": "U1"},
    )


def summarise_from_notes(messages: Any, tool_specs: Any, system_prompt: Any) -> Turn:
    """Summarise exactly the notes the tool returned."""
    result = messages[-1]["content"][0]["toolResult"]
    notes = json.loads(result["content"][0]["text"])["result"]["notes"]
    return Turn.text("Summary: " + "; ".join(note["text"] for note in notes))


async def test_the_agent_notes_a_fact_and_later_summarises_what_was_noted() -> None:
    model = ScriptedModel(
        [
            Turn.tool(
                "add_incident_note", {"incident": "db-failover", "text": "primary down 14:02"}
            ),
            Turn.text("Noted."),
            Turn.tool("read_incident_notes", {"incident": "db-failover"}),
            summarise_from_notes,
        ]
    )
    parts = WorkflowParts({"WEAK": model, "DEFAULT": model, "STRONG": model})
    async with parts.running():
        for text in ("db-failover: primary down at 14:02", "summarise db-failover"):
            await parts.engine.wait(await parts.engine.start_workflow_intent(_ask(text)))
    assert "You keep incident timelines" in (model.calls[0].system_prompt or "")
    assert [message for _, message, _ in parts.channel.sent] == [
        "Noted.",
        "Summary: primary down 14:02",
    ]
    stored = await parts.kv.for_role("incident_notes").get("db-failover")
    assert (stored["notes"][0]["by"], stored["notes"][0]["text"]) == ("U1", "primary down 14:02")
