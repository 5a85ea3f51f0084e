"""run_tool: the tool's intent is carried out before its reply is handed back."""

from dataclasses import dataclass
from typing import Any

import pydantic
from strands import tool

from common.intent_processor import IntentProcessor
from common.intents import AuditIntent, Intent
from llm_provider.tool_runner import run_tool

ORIGIN = {"channel_id": "C1", "user_id": "U1", "event_id": "evt-9"}


@dataclass
class PingIntent(Intent):
    """Ask for a ping; the handler says what it did."""

    target: str
    channel_id: str | None = None
    user_id: str | None = None

    def validate(self) -> bool:
        return bool(self.target)


seen: list[PingIntent] = []


async def process_ping(intent: PingIntent) -> dict[str, Any]:
    seen.append(intent)
    if intent.target == "down":
        raise RuntimeError("host 'down' did not answer")
    return {"message": f"pinged {intent.target} for {intent.user_id}", "rtt_ms": 3}


@tool
async def ping(target: str) -> dict[str, Any]:
    """Ping a host.

    Args:
        target: The host.
    """
    return {"success": True, "message": "will ping", "intent": PingIntent(target=target)}


def _processor() -> IntentProcessor:
    processor = IntentProcessor()
    processor.register_role_intent_handler(PingIntent, process_ping, role="net")
    return processor


async def test_the_reply_carries_the_handlers_real_outcome() -> None:
    reply = await run_tool(ping, {"target": "db1"}, _processor(), "net", ORIGIN)
    assert reply == {
        "success": True,
        "message": "pinged db1 for U1",
        "result": {"message": "pinged db1 for U1", "rtt_ms": 3},
    }


async def test_the_intent_inherits_channel_user_and_parent_from_the_origin() -> None:
    seen.clear()
    await run_tool(ping, {"target": "db1"}, _processor(), "net", ORIGIN)
    assert (seen[0].channel_id, seen[0].user_id, seen[0].parent_id) == ("C1", "U1", "evt-9")


async def test_a_failing_intent_makes_the_reply_a_failure() -> None:
    reply = await run_tool(ping, {"target": "down"}, _processor(), "net", ORIGIN)
    assert reply["success"] is False and "host 'down' did not answer" in reply["message"]


async def test_an_invalid_intent_makes_the_reply_a_failure() -> None:
    reply = await run_tool(ping, {"target": ""}, _processor(), "net", ORIGIN)
    assert reply["success"] is False and "invalid PingIntent" in reply["message"]


async def test_a_reply_without_intent_is_returned_as_is() -> None:
    async def hello(name: str) -> dict[str, Any]:
        return {"success": True, "message": f"hello {name}"}

    reply = await run_tool(hello, {"name": "ann"}, _processor(), "net", ORIGIN)
    assert reply == {"success": True, "message": "hello ann"}


async def test_a_plain_function_tool_with_a_core_intent_is_carried_out() -> None:
    def note(text: str) -> dict[str, Any]:
        return {"success": True, "message": "noted", "intent": AuditIntent("note", {"t": text})}

    processor = _processor()
    reply = await run_tool(note, {"text": "x"}, processor, "net", ORIGIN)
    records = processor.audit_sink.records  # type: ignore[attr-defined]
    assert (reply["success"], [(r.action, r.parent_id) for r in records]) == (
        True,
        [("note", "evt-9")],
    )


async def test_a_raising_tool_gives_a_failure_reply() -> None:
    async def broken() -> dict[str, Any]:
        raise ValueError("no")

    reply = await run_tool(broken, {}, _processor(), "net", ORIGIN)
    assert reply == {"success": False, "message": "tool 'broken' raised ValueError: no"}


async def test_a_tool_returning_garbage_gives_a_failure_reply() -> None:
    async def sloppy() -> str:
        return "done!"

    reply = await run_tool(sloppy, {}, _processor(), "net", ORIGIN)
    assert reply == {
        "success": False,
        "message": "tool 'sloppy' returned 'done!'; expected a dict with 'success' and 'message'",
    }


async def test_arguments_are_checked_against_the_tools_type_hints() -> None:
    reply = await run_tool(ping, {"target": 7}, _processor(), "net", ORIGIN)
    assert reply == {
        "success": False,
        "message": "tool 'ping' got invalid arguments: target: Input should be a valid string "
        "(got 7)",
    }


async def test_an_unknown_argument_is_refused_before_the_tool_runs() -> None:
    seen.clear()
    reply = await run_tool(ping, {"target": "db1", "port": 1}, _processor(), "net", ORIGIN)
    assert (reply["success"], seen) == (False, [])
    assert "port: Unexpected keyword argument" in reply["message"]


async def test_a_missing_argument_is_named() -> None:
    reply = await run_tool(ping, {}, _processor(), "net", ORIGIN)
    assert reply["message"] == (
        "tool 'ping' got invalid arguments: target: Missing required argument"
    )


async def test_a_validation_error_inside_the_tool_is_not_blamed_on_its_arguments() -> None:
    class Reading(pydantic.BaseModel):
        value: int

    async def read(sensor: str) -> dict[str, Any]:
        Reading(value=sensor)  # type: ignore[arg-type]
        return {"success": True, "message": "read"}

    reply = await run_tool(read, {"sensor": "abc"}, _processor(), "net", ORIGIN)
    assert reply["success"] is False
    assert reply["message"].startswith("tool 'read' raised 1 validation error for Reading")
