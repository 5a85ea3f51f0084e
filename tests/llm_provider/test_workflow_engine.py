"""The workflow engine with a scripted strands Model driving a real Agent and real roles."""

import json
from typing import Any

import pytest

from common.errors import IntentHandlingError
from common.intents import WorkflowIntent
from llm_provider.scripted_model import ScriptedModel, Turn
from llm_provider.workflow_engine import NO_MODEL
from tests.fakes.clock import settle
from tests.workflow_parts import WorkflowParts

THREAD = "slack:C1/1700000000.000100"
ROUTE_TO_TIMER = Turn.text('{"route": "timer", "confidence": 0.9, "parameters": {}}')


def models(weak: ScriptedModel, default: ScriptedModel | None = None) -> dict[str, Any]:
    other = default or ScriptedModel([])
    return {"WEAK": weak, "DEFAULT": other, "STRONG": other}


def tool_result(messages: Any) -> dict[str, Any]:
    """Return the last tool result in ``messages``, its text parsed as JSON."""
    for message in reversed(messages):
        for block in message["content"]:
            if "toolResult" in block:
                result = block["toolResult"]
                return {"status": result["status"], **json.loads(result["content"][0]["text"])}
    raise AssertionError("no tool result in the messages")


def answer_with_tool_result(messages: Any, tool_specs: Any, system_prompt: Any) -> Turn:
    """Reply with the message of the tool result the model was just given."""
    return Turn.text(f"Done: {tool_result(messages)['message']}")


def request(text: str = "remind me in 20 minutes to check the deploy", **extra: Any) -> Any:
    params = {"request": text, "channel_id": THREAD, "user_id": "U1", **extra}
    return WorkflowIntent(workflow_type="route", parameters=params)


async def test_the_router_picks_the_timer_role_and_its_tool_sets_a_real_timer() -> None:
    model = ScriptedModel(
        [
            ROUTE_TO_TIMER,
            Turn.tool("set_timer", {"duration": "20 minutes", "label": "check the deploy"}),
            answer_with_tool_result,
        ]
    )
    async with WorkflowParts(models(model)).running() as parts:
        run_id = await parts.engine.start_workflow_intent(request())
        run = await parts.engine.wait(run_id)
        (timer,) = await parts.timers.list()
        await parts.bus.drain()
    assert (run.state, run.role) == ("completed", "timer")
    assert [(event, data["run_id"]) for event, data in parts.events] == [
        ("WORKFLOW_STARTED", run_id),
        ("WORKFLOW_COMPLETED", run_id),
    ]
    assert (timer.label, timer.channel_id, timer.user_id) == ("check the deploy", THREAD, "U1")
    given = tool_result(model.calls[2].messages)
    assert (given["status"], given["result"]["timer_id"]) == ("success", timer.timer_id)
    assert parts.channel.sent == [("C1/1700000000.000100", f"Done: {given['message']}", "U1")]
    assert timer.timer_id in given["message"]


async def test_the_router_sees_only_fast_reply_roles_and_the_agent_only_its_roles_tools() -> None:
    model = ScriptedModel([ROUTE_TO_TIMER, Turn.text("ok")])
    async with WorkflowParts(models(model)).running() as parts:
        await parts.engine.wait(await parts.engine.start_workflow_intent(request()))
    router_call, role_call = model.calls
    assert "- timer: The user wants a reminder" in (router_call.system_prompt or "")
    assert "- router" not in (router_call.system_prompt or "") and router_call.tool_names == []
    assert sorted(role_call.tool_names) == ["cancel_timer", "list_timers", "set_timer"]


async def test_a_tool_error_reaches_the_model_as_an_error() -> None:
    model = ScriptedModel(
        [
            Turn.tool("cancel_timer", {"timer_id": "tmr-nope"}),
            answer_with_tool_result,
        ]
    )
    async with WorkflowParts(models(model)).running() as parts:
        run = await parts.engine.wait(
            await parts.engine.start_workflow_intent(request("cancel tmr-nope", role="timer"))
        )
    given = tool_result(model.calls[1].messages)
    assert (given["status"], given["success"]) == ("error", False)
    assert "no timer has id 'tmr-nope'" in given["message"]
    assert run.tool_calls[0]["success"] is False


async def test_invalid_tool_input_reaches_the_model_as_an_error_and_sets_nothing() -> None:
    model = ScriptedModel([Turn.tool("set_timer", {"duration": "soon"}), Turn.text("sorry")])
    async with WorkflowParts(models(model)).running() as parts:
        await parts.engine.wait(await parts.engine.start_workflow_intent(request(role="timer")))
        assert await parts.timers.list() == []
    given = tool_result(model.calls[1].messages)
    assert given["status"] == "error" and "duration 'soon' is not understood" in given["message"]


def per_user_script(messages: Any, tool_specs: Any, system_prompt: Any) -> Turn:
    """Route, then set a timer labelled with the user's words, then report the tool's reply."""
    last = messages[-1]["content"][0]
    if "toolResult" in last:
        return answer_with_tool_result(messages, tool_specs, system_prompt)
    if "route" in (system_prompt or ""):
        return ROUTE_TO_TIMER
    return Turn.tool("set_timer", {"duration": "5m", "label": messages[0]["content"][0]["text"]})


async def test_concurrent_workflows_of_two_users_never_exchange_intents_or_answers() -> None:
    model = ScriptedModel([per_user_script] * 6)
    async with WorkflowParts(models(model)).running() as parts:
        alice = WorkflowIntent(
            workflow_type="route",
            parameters={"request": "alice tea", "channel_id": "slack:CA/1.1", "user_id": "UA"},
        )
        bob = WorkflowIntent(
            workflow_type="route",
            parameters={"request": "bob deploy", "channel_id": "slack:CB/2.2", "user_id": "UB"},
        )
        ids = [await parts.engine.start_workflow_intent(i) for i in (alice, bob)]
        assert parts.engine.active_count == 2
        runs = [await parts.engine.wait(run_id) for run_id in ids]
        timers = {t.user_id: t for t in await parts.timers.list()}
    assert {u: (t.label, t.channel_id) for u, t in timers.items()} == {
        "UA": ("alice tea", "slack:CA/1.1"),
        "UB": ("bob deploy", "slack:CB/2.2"),
    }
    sent = {user: (target, message) for target, message, user in parts.channel.sent}
    assert sent["UA"][0] == "CA/1.1" and timers["UA"].timer_id in sent["UA"][1]
    assert sent["UB"][0] == "CB/2.2" and timers["UB"].timer_id in sent["UB"][1]
    assert [len(run.tool_calls) for run in runs] == [1, 1]
    assert runs[0].tool_calls[0]["input"]["label"] == "alice tea"


async def test_a_workflow_over_its_timeout_fails_and_says_so_in_the_thread() -> None:
    model = ScriptedModel([Turn.hang()])
    async with WorkflowParts(models(model), timeout=0.05).running() as parts:
        run = await parts.engine.wait(await parts.engine.start_workflow_intent(request()))
        await parts.bus.drain()
    assert (run.state, run.failure) == ("failed", "timeout")
    assert run.error == "the run took longer than llm.timeout (0.05 s)"
    reply = (
        "Sorry, the model did not answer within llm.timeout (0.05 s); try again, or ask an "
        "operator to raise llm.timeout."
    )
    assert parts.channel.sent == [("C1/1700000000.000100", reply, "U1")]
    assert [event for event, _ in parts.events] == ["WORKFLOW_STARTED", "WORKFLOW_FAILED"]
    assert (await parts.audit.tail(1, "workflow_failed"))[0].details["run_id"] == run.run_id


async def test_stopping_the_engine_cancels_and_awaits_running_workflows() -> None:
    model = ScriptedModel([Turn.hang()])
    parts = WorkflowParts(models(model))
    async with parts.running():
        run_id = await parts.engine.start_workflow_intent(request())
        await settle()
        assert parts.engine.runs[run_id].state == "running"
    run = parts.engine.runs[run_id]
    assert (run.state, run.failure, parts.engine.active_count) == ("cancelled", "stopped", 0)
    stopped = (
        "Sorry, intentd stopped before it could finish this request; ask again once it is back."
    )
    assert parts.channel.sent == [("C1/1700000000.000100", stopped, "U1")]
    (record,) = await parts.audit.tail(5, "workflow_failed")
    assert (record.details["run_id"], record.details["state"]) == (run_id, "cancelled")


async def test_concurrency_limit_queues_the_second_run_until_the_first_ends() -> None:
    model = ScriptedModel([Turn.hang(), Turn.text("second answer")])
    async with WorkflowParts(models(model), max_concurrent=1, timeout=0.3).running() as parts:
        first = await parts.engine.start_workflow_intent(request("one", role="timer"))
        second = await parts.engine.start_workflow_intent(request("two", role="timer"))
        await settle()
        assert (len(model.calls), parts.engine.runs[second].state) == (1, "queued")
        runs = [await parts.engine.wait(first), await parts.engine.wait(second)]
    assert [run.state for run in runs] == ["failed", "completed"]
    assert runs[1].answer == "second answer"


async def test_unparseable_router_output_gets_a_did_not_understand_reply() -> None:
    model = ScriptedModel([Turn.text("I think the timer, maybe?")])
    async with WorkflowParts(models(model)).running() as parts:
        run = await parts.engine.wait(await parts.engine.start_workflow_intent(request("sing")))
    assert (run.state, run.role) == ("completed", None)
    reply = "Sorry, I did not understand 'sing'. I can help with: incident_notes, timer."
    assert parts.channel.sent == [("C1/1700000000.000100", reply, "U1")]


async def test_low_confidence_goes_to_the_configured_default_role() -> None:
    model = ScriptedModel(
        [Turn.text('{"route": "timer", "confidence": 0.2}'), Turn.text("timer here")]
    )
    parts = WorkflowParts(models(model), default_role="timer", confidence_threshold=0.5)
    async with parts.running():
        run = await parts.engine.wait(await parts.engine.start_workflow_intent(request("hmm")))
    assert (run.role, run.answer) == ("timer", "timer here")


async def test_token_usage_of_every_model_call_is_audited() -> None:
    model = ScriptedModel([ROUTE_TO_TIMER.with_usage(100, 7), Turn.text("ok").with_usage(40, 3)])
    async with WorkflowParts(models(model)).running() as parts:
        await parts.engine.wait(await parts.engine.start_workflow_intent(request()))
        (record,) = await parts.audit.tail(5, "workflow_completed")
    assert record.details["usage"] == {"inputTokens": 140, "outputTokens": 10, "totalTokens": 150}
    assert (record.user_id, record.role) == ("U1", "timer")
    assert parts.engine.tokens == {("timer", "input"): 140, ("timer", "output"): 10}
    assert parts.engine.finished == {"completed": 1}


async def test_a_model_error_fails_the_workflow_with_a_readable_reply() -> None:
    model = ScriptedModel([Turn.throttle()])
    async with WorkflowParts(models(model)).running() as parts:
        run = await parts.engine.wait(await parts.engine.start_workflow_intent(request()))
    assert (run.failure, run.error) == ("throttled", "ModelThrottledException: rate limit exceeded")
    reply = "Sorry, the model provider is rate limiting requests (HTTP 429); try again in a minute."
    assert parts.channel.sent == [("C1/1700000000.000100", reply, "U1")]


async def test_an_unknown_role_fails_with_the_loaded_roles() -> None:
    async with WorkflowParts(models(ScriptedModel([]))).running() as parts:
        run = await parts.engine.wait(
            await parts.engine.start_workflow_intent(request(role="weather"))
        )
    assert run.error is not None and "no role named 'weather' is loaded" in run.error
    assert parts.channel.sent[0][1].startswith("Sorry, no role named 'weather' is loaded;")


async def test_without_a_model_a_workflow_fails_at_once_saying_how_to_configure_one() -> None:
    async with WorkflowParts({}).running() as parts:
        with pytest.raises(IntentHandlingError, match=r"llm\.provider is 'none'"):
            await parts.engine.start_workflow_intent(request())
        outcome = await parts.processor.process_intents([request()])
    assert outcome["failed"] == 1 and parts.engine.active_count == 0
    assert parts.channel.sent[0] == ("C1/1700000000.000100", NO_MODEL, "U1")


async def test_finished_runs_are_forgotten_after_keep_finished() -> None:
    model = ScriptedModel([Turn.text("a")])
    async with WorkflowParts(models(model), keep_finished=60).running() as parts:
        run_id = await parts.engine.start_workflow_intent(request(role="timer"))
        await parts.engine.wait(run_id)
        assert parts.engine.cleanup_old_workflows(parts.clock.now + 59) == 0
        assert parts.engine.cleanup_old_workflows(parts.clock.now + 61) == 1
        assert run_id not in parts.engine.runs


async def test_a_role_whose_llm_type_has_no_model_fails_naming_the_config_key() -> None:
    async with WorkflowParts({"WEAK": ScriptedModel([])}).running() as parts:
        run = await parts.engine.wait(
            await parts.engine.start_workflow_intent(request(role="incident_notes"))
        )
    assert run.error == (
        "WorkflowError: no model is configured for llm_type 'DEFAULT'; set llm.provider and "
        "llm.models.DEFAULT in config.yaml"
    )


async def test_an_engine_that_is_not_running_refuses_and_keeps_no_run() -> None:
    parts = WorkflowParts(models(ScriptedModel([])))
    with pytest.raises(IntentHandlingError, match="the workflow engine is not running"):
        await parts.engine.start_workflow_intent(request())
    assert (parts.engine.runs, parts.engine.active_count) == ({}, 0)


async def test_start_workflow_routes_a_request_with_its_origin() -> None:
    model = ScriptedModel([ROUTE_TO_TIMER, Turn.text("ok")])
    async with WorkflowParts(models(model)).running() as parts:
        run_id = await parts.engine.start_workflow(
            "remind me", {"channel_id": "slack:C5", "user_id": "U5"}
        )
        run = await parts.engine.wait(run_id)
    assert (run.role, run.answer, parts.channel.sent) == ("timer", "ok", [("C5", "ok", "U5")])
