"""Every request gets exactly one truthful answer, with a scripted model driving real Agents."""

from typing import Any

from common.intents import WorkflowIntent
from llm_provider.scripted_model import ScriptedModel, Turn
from tests.workflow_parts import WorkflowParts

THREAD = "slack:C1/1700000000.000100"
ROUTE_TO_TIMER = Turn.text('{"route": "timer", "confidence": 0.9, "parameters": {}}')
SET_TIMER = Turn.tool("set_timer", {"duration": "10s", "label": "tea"})
NOT_UNDERSTOOD = "Sorry, I did not understand 'tea in 10s'. I can help with: incident_notes, timer."


def models(model: ScriptedModel) -> dict[str, Any]:
    return {"WEAK": model, "DEFAULT": model, "STRONG": model}


def request(text: str = "tea in 10s", **extra: Any) -> WorkflowIntent:
    params = {"request": text, "channel_id": THREAD, "user_id": "U1", **extra}
    return WorkflowIntent(workflow_type="route", parameters=params)


async def answer(parts: WorkflowParts, intent: WorkflowIntent) -> Any:
    return await parts.engine.wait(await parts.engine.start_workflow_intent(intent))


def replies(parts: WorkflowParts) -> list[str]:
    return [message for _, message, _ in parts.channel.sent]


async def test_an_empty_answer_gets_a_reply_saying_so() -> None:
    async with WorkflowParts(models(ScriptedModel([Turn.text("")]))).running() as parts:
        run = await answer(parts, request(role="timer"))
    assert (run.state, run.failure) == ("failed", "empty_answer")
    assert replies(parts) == ["Sorry, the model gave an empty answer; try rephrasing the request."]


async def test_an_empty_answer_after_a_tool_acted_says_what_was_done() -> None:
    model = ScriptedModel([SET_TIMER, Turn.text("  ")])
    async with WorkflowParts(models(model)).running() as parts:
        run = await answer(parts, request(role="timer"))
        (timer,) = await parts.timers.list()
    assert replies(parts) == [
        f"Timer {timer.timer_id} set for 2027-01-15T08:00:10Z (10s from now). Then the model "
        "gave an empty answer, so I stopped there; what is listed here is done."
    ]
    assert run.tool_calls[0]["success"] is True


async def test_a_failure_after_a_tool_acted_says_what_was_done_and_audits_the_detail() -> None:
    model = ScriptedModel([SET_TIMER, Turn.fail(RuntimeError("model process died"))])
    async with WorkflowParts(models(model)).running() as parts:
        run = await answer(parts, request(role="timer"))
        (timer,) = await parts.timers.list()
        (record,) = await parts.audit.tail(5, "workflow_failed")
    (reply,) = replies(parts)
    assert reply.startswith(f"Timer {timer.timer_id} set for 2027-01-15T08:00:10Z")
    assert reply.endswith(
        "Then the workflow failed unexpectedly, so I stopped there; what is listed here is done."
    )
    assert (record.details["failure"], record.details["error"]) == (
        "failed",
        "RuntimeError: model process died",
    )
    assert run.error == "RuntimeError: model process died"


async def test_a_failed_tool_call_is_not_reported_as_done() -> None:
    model = ScriptedModel(
        [Turn.tool("cancel_timer", {"timer_id": "tmr-nope"}), Turn.fail(RuntimeError("x"))]
    )
    async with WorkflowParts(models(model)).running() as parts:
        await answer(parts, request(role="timer"))
    assert replies(parts) == [
        "Sorry, the workflow failed unexpectedly; an operator can find why in the log."
    ]


async def test_a_router_answer_cut_at_max_tokens_is_not_the_expected_json() -> None:
    model = ScriptedModel([Turn.cut('{"route": "timer", "confid')])
    async with WorkflowParts(models(model)).running() as parts:
        run = await answer(parts, request())
    assert (run.state, run.role, replies(parts)) == ("completed", None, [NOT_UNDERSTOOD])


async def test_a_router_answer_cut_at_max_tokens_goes_to_the_default_role() -> None:
    model = ScriptedModel([Turn.cut('{"route": "ti'), Turn.text("timer here")])
    async with WorkflowParts(models(model), default_role="timer").running() as parts:
        run = await answer(parts, request())
    assert (run.role, replies(parts)) == ("timer", ["timer here"])


async def test_an_empty_router_answer_is_not_the_expected_json() -> None:
    async with WorkflowParts(models(ScriptedModel([Turn.text("")]))).running() as parts:
        run = await answer(parts, request())
    assert (run.state, replies(parts)) == ("completed", [NOT_UNDERSTOOD])


async def test_a_role_answer_cut_at_max_tokens_says_so() -> None:
    model = ScriptedModel([Turn.cut("Your timer is se")])
    async with WorkflowParts(models(model)).running() as parts:
        run = await answer(parts, request(role="timer"))
    assert run.failure == "truncated"
    assert replies(parts) == [
        "Sorry, the model's answer was cut off at its token limit; try a shorter request, or "
        "ask an operator to raise llm.params.max_tokens."
    ]
    assert "MaxTokensReachedException" in (run.error or "")


async def test_usage_is_unknown_when_a_model_call_reports_none() -> None:
    model = ScriptedModel([ROUTE_TO_TIMER.with_usage(100, 7), Turn.text("ok").without_usage()])
    async with WorkflowParts(models(model)).running() as parts:
        await answer(parts, request())
        (record,) = await parts.audit.tail(5, "workflow_completed")
    assert record.details["usage"] == {
        "inputTokens": None,
        "outputTokens": None,
        "totalTokens": None,
    }
    assert parts.engine.tokens == {("timer", "input"): 0, ("timer", "output"): 0}


def throttle_each_request_once(seen: set[str]) -> Any:
    """Throttle the first call of every request, route it to the timer role, answer 'ok'."""

    def turn(messages: Any, tool_specs: Any, system_prompt: Any) -> Turn:
        text = messages[0]["content"][0]["text"]
        if "route" not in (system_prompt or ""):
            return Turn.text(f"ok {text}")
        if text in seen:
            return ROUTE_TO_TIMER
        seen.add(text)
        return Turn.throttle()

    return turn


async def test_four_runs_throttled_at_once_each_get_their_own_retries() -> None:
    model = ScriptedModel([throttle_each_request_once(set())] * 12)
    parts = WorkflowParts(models(model), retry_attempts=2, retry_delay=0)
    async with parts.running():
        ids = [await parts.engine.start_workflow_intent(request(f"r{i}")) for i in range(4)]
        runs = [await parts.engine.wait(run_id) for run_id in ids]
    assert [(run.state, run.answer, run.retries) for run in runs] == [
        ("completed", f"ok r{i}", 1) for i in range(4)
    ]
    assert parts.waits == [0, 0, 0, 0]
