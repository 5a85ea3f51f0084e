"""The scripted model and fake LLM servers drive a real strands Agent through a tool call."""

import asyncio
import json
import threading
from typing import Any

import httpx
import ollama
import openai
import pytest
from pydantic import BaseModel
from strands import Agent, ModelRetryStrategy, tool
from strands.agent import AgentResult
from strands.models import Model
from strands.models.ollama import OllamaModel
from strands.models.openai import OpenAIModel
from strands.types.exceptions import EventLoopException, ModelThrottledException

from llm_provider.scripted_model import ScriptedModel, ScriptError, ToolCall, Turn
from tests.fakes.llm_servers import FakeOllamaServer, FakeOpenAIServer

SCRIPT = [
    Turn.tool("set_timer", {"duration": "5m"}).with_usage(100, 7),
    Turn.text("Timer t-42 is set.").with_usage(130, 9),
]


class Reminder(BaseModel):
    """A structured answer for structured-output tests."""

    what: str
    minutes: int


def make_agent(model: Model, **overrides: Any) -> tuple[Agent, list[dict[str, str]]]:
    """Build an Agent with a recording async set_timer tool and retries off."""
    ran: list[dict[str, str]] = []

    @tool
    async def set_timer(duration: str, label: str = "") -> dict[str, str]:
        """Set a timer.

        Args:
            duration: How long until it fires, e.g. "5m".
            label: What the timer is for.
        """
        ran.append({"duration": duration, "label": label})
        return {"timer_id": "t-42", "duration": duration}

    settings: dict[str, Any] = {
        "tools": [set_timer],
        "callback_handler": None,
        "retry_strategy": None,
        "system_prompt": "You set timers.",
    }
    return Agent(model=model, **settings | overrides), ran


def openai_model(server: FakeOpenAIServer, **config: Any) -> OpenAIModel:
    """Build an OpenAIModel pointed at the fake server, with the client's own retries off."""
    client_args = {"base_url": server.base_url, "api_key": "x", "max_retries": 0}
    return OpenAIModel(client_args=client_args, model_id="m", **config)


def ollama_model(server: FakeOllamaServer) -> OllamaModel:
    """Build an OllamaModel pointed at the fake server, keeping no idle connection open."""
    # strands 1.62 builds an ollama.AsyncClient per request and never closes it, so a pooled
    # keep-alive socket would leak (ResourceWarning on GC); without keep-alive nothing is left open.
    client_args = {"limits": httpx.Limits(max_keepalive_connections=0)}
    return OllamaModel(host=server.host, model_id="m", ollama_client_args=client_args)


def model_for(server: FakeOpenAIServer | FakeOllamaServer) -> Model:
    """Build the strands provider model that speaks this fake server's protocol."""
    return openai_model(server) if isinstance(server, FakeOpenAIServer) else ollama_model(server)


def assert_answered(result: AgentResult, ran: list[dict[str, str]]) -> None:
    """Check that the tool ran with the scripted input and the run ended with the last turn."""
    assert ran == [{"duration": "5m", "label": ""}]
    assert result.stop_reason == "end_turn"
    assert str(result).strip() == "Timer t-42 is set."


async def test_scripted_model_runs_tool_then_answers() -> None:
    model = ScriptedModel(SCRIPT)
    agent, ran = make_agent(model)

    result = await agent.invoke_async("Set a timer for 5 minutes")

    assert_answered(result, ran)
    assert [(c.tool_names, c.system_prompt) for c in model.calls] == [
        (["set_timer"], "You set timers."),
    ] * 2
    tool_result = model.calls[1].messages[-1]["content"][0]["toolResult"]
    assert tool_result["toolUseId"] == "call_1_0"
    assert json.loads(tool_result["content"][0]["text"])["timer_id"] == "t-42"
    usage = result.metrics.accumulated_usage
    assert (usage["inputTokens"], usage["outputTokens"]) == (230, 16)


async def test_callable_turn_answers_from_what_the_model_was_sent() -> None:
    def echo(messages: Any, tool_specs: Any, system_prompt: str | None) -> Turn:
        return Turn.text(messages[-1]["content"][0]["toolResult"]["content"][0]["text"])

    agent, _ = make_agent(ScriptedModel([Turn.tool("set_timer", {"duration": "1h"}, "id-1"), echo]))

    result = await agent.invoke_async("Set a timer for an hour")

    assert json.loads(str(result)) == {"timer_id": "t-42", "duration": "1h"}


async def test_several_tool_calls_in_one_turn_all_run() -> None:
    turn = Turn.tools(
        ToolCall("set_timer", {"duration": "1m"}), ToolCall("set_timer", {"duration": "2m"})
    )
    agent, ran = make_agent(ScriptedModel([turn, Turn.text("both set")]))

    await agent.invoke_async("Two timers")

    assert sorted(r["duration"] for r in ran) == ["1m", "2m"]


@pytest.mark.parametrize("stream", [True, False])
async def test_openai_model_runs_tool_then_answers_against_fake_server(stream: bool) -> None:
    async with FakeOpenAIServer(SCRIPT) as server:
        agent, ran = make_agent(openai_model(server, stream=stream))

        result = await agent.invoke_async("Set a timer for 5 minutes")

    assert_answered(result, ran)
    first, second = server.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["set_timer"]
    assert first["stream"] is stream
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == "call_1_0"
    assert json.loads(tool_message["content"])["timer_id"] == "t-42"
    usage = result.metrics.accumulated_usage
    assert (usage["inputTokens"], usage["outputTokens"]) == (230, 16)


async def test_ollama_model_runs_tool_then_answers_against_fake_server() -> None:
    async with FakeOllamaServer(SCRIPT) as server:
        agent, ran = make_agent(ollama_model(server))

        result = await agent.invoke_async("Set a timer for 5 minutes")

    assert_answered(result, ran)
    first, second = server.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["set_timer"]
    assert first["messages"][0] == {"role": "system", "content": "You set timers."}
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"])["timer_id"] == "t-42"
    usage = result.metrics.accumulated_usage
    assert (usage["inputTokens"], usage["outputTokens"]) == (230, 16)


async def test_openai_429_raises_model_throttled_when_retry_is_off() -> None:
    async with FakeOpenAIServer([Turn.throttle(retry_after="1"), *SCRIPT]) as server:
        agent, ran = make_agent(openai_model(server))

        with pytest.raises(ModelThrottledException) as caught:
            await agent.invoke_async("Set a timer")

    assert isinstance(caught.value.__cause__, openai.RateLimitError)
    assert caught.value.__cause__.response.headers["Retry-After"] == "1"
    assert (ran, len(server.requests)) == ([], 1)


async def test_throttling_after_a_tool_call_arrives_wrapped_in_event_loop_exception() -> None:
    agent, ran = make_agent(ScriptedModel([SCRIPT[0], Turn.throttle()]))

    with pytest.raises(EventLoopException) as caught:
        await agent.invoke_async("Set a timer for 5 minutes")

    assert isinstance(caught.value.original_exception, ModelThrottledException)
    assert ran == [{"duration": "5m", "label": ""}]


async def test_zero_delay_retry_strategy_retries_after_openai_429() -> None:
    async with FakeOpenAIServer([Turn.throttle(retry_after="0"), *SCRIPT]) as server:
        retry = ModelRetryStrategy(max_attempts=2, initial_delay=0)
        agent, ran = make_agent(openai_model(server), retry_strategy=retry)

        result = await agent.invoke_async("Set a timer for 5 minutes")

    assert_answered(result, ran)
    assert len(server.requests) == 3


async def test_ollama_429_surfaces_as_response_error_so_strands_does_not_retry_it() -> None:
    async with FakeOllamaServer([Turn.throttle(retry_after="1")]) as server:
        agent, _ = make_agent(ollama_model(server))

        with pytest.raises(ollama.ResponseError) as caught:
            await agent.invoke_async("Set a timer")

    assert (caught.value.status_code, caught.value.error) == (429, "rate limit exceeded")


async def test_openai_500_surfaces_as_internal_server_error() -> None:
    async with FakeOpenAIServer([Turn.fail(RuntimeError("model down"))]) as server:
        agent, _ = make_agent(openai_model(server))

        with pytest.raises(openai.InternalServerError, match="model down"):
            await agent.invoke_async("Set a timer")


async def test_hanging_turn_times_out_and_agent_stays_usable() -> None:
    agent, _ = make_agent(ScriptedModel([Turn.hang(), Turn.text("back")]))

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(agent.invoke_async("Set a timer"), 0.2)

    assert str(await agent.invoke_async("again")).strip() == "back"


@pytest.mark.parametrize("server_type", [FakeOpenAIServer, FakeOllamaServer])
async def test_hanging_server_turn_times_out_and_server_closes(server_type: type) -> None:
    async with server_type([Turn.hang()]) as server:
        agent, _ = make_agent(model_for(server))

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(agent.invoke_async("Set a timer"), 0.2)

        assert len(server.requests) == 1


async def test_failing_turn_raises_its_exception() -> None:
    agent, _ = make_agent(ScriptedModel([Turn.fail(RuntimeError("model down"))]))

    with pytest.raises(RuntimeError, match="model down"):
        await agent.invoke_async("Set a timer")


async def test_running_out_of_turns_raises_script_error() -> None:
    agent, _ = make_agent(ScriptedModel([]))

    with pytest.raises(ScriptError, match="called 1 times but its script has 0 turns"):
        await agent.invoke_async("Set a timer")


async def test_server_out_of_turns_answers_500_with_the_script_error() -> None:
    async with FakeOpenAIServer([]) as server:
        agent, _ = make_agent(openai_model(server))

        with pytest.raises(openai.InternalServerError, match="add a Turn for call 1"):
            await agent.invoke_async("Set a timer")


async def test_structured_output_yields_the_scripted_instance() -> None:
    model = ScriptedModel([Turn.structured(Reminder(what="tea", minutes=5))])

    events = [e async for e in model.structured_output(Reminder, [], system_prompt="Be brief.")]

    assert events == [{"output": Reminder(what="tea", minutes=5)}]


async def test_structured_output_of_a_text_turn_raises_script_error() -> None:
    model = ScriptedModel([Turn.text("no json")])

    with pytest.raises(ScriptError, match=r"script Turn.structured\(Reminder"):
        [e async for e in model.structured_output(Reminder, [])]


@pytest.mark.parametrize("server_type", [FakeOpenAIServer, FakeOllamaServer])
async def test_structured_output_through_non_streaming_fake_server(server_type: type) -> None:
    async with server_type([Turn.structured(Reminder(what="tea", minutes=5))]) as server:
        model = model_for(server)
        prompt = [{"role": "user", "content": [{"text": "Remind me"}]}]

        events = [e async for e in model.structured_output(Reminder, prompt)]

    assert events[-1] == {"output": Reminder(what="tea", minutes=5)}
    assert server.requests[0].get("stream", False) is False


def test_building_provider_models_starts_no_thread() -> None:
    before = threading.active_count()

    OpenAIModel(client_args={"base_url": "http://127.0.0.1:9/v1", "api_key": "x"}, model_id="m")
    OllamaModel(host="http://127.0.0.1:9", model_id="m")

    assert threading.active_count() == before


async def test_ollama_run_on_an_ip_address_starts_no_thread() -> None:
    async with FakeOllamaServer(SCRIPT) as server:
        agent, _ = make_agent(ollama_model(server))
        before = set(threading.enumerate())

        await agent.invoke_async("Set a timer for 5 minutes")

        assert set(threading.enumerate()) == before


async def test_openai_run_starts_the_loops_default_executor_thread() -> None:
    # The openai client runs get_platform via asyncio.to_thread on its first request, and strands
    # builds a new client per request unless given client=; the thread is the loop's executor.
    async with FakeOpenAIServer(SCRIPT) as server:
        agent, _ = make_agent(openai_model(server))
        before = set(threading.enumerate())

        await agent.invoke_async("Set a timer for 5 minutes")

        assert [t.name for t in set(threading.enumerate()) - before] == ["asyncio_0"]
