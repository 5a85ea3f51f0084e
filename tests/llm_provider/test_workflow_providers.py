"""Workflows through a running Supervisor with strands' real OpenAI and Ollama providers.

The providers talk HTTP to local fake servers on 127.0.0.1, so the real request, streaming and
error paths run: USER_REQUEST -> router role -> WEAK model routes -> the timer role's agent calls
set_timer -> the timer is in the store -> the answer is posted to the request's channel.
"""

import asyncio
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from common.intents import WorkflowIntent
from llm_provider.config import LLMConfig
from llm_provider.factory import Models, build_models
from llm_provider.scripted_model import Turn
from llm_provider.workflow_engine import WorkflowRun
from supervisor.config import Config
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock
from tests.fakes.llm_servers import FakeOllamaServer, FakeOpenAIServer
from tests.workflow_parts import WorkflowParts

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROUTE_TO_TIMER = Turn.text('{"route": "timer", "confidence": 0.95, "parameters": {}}')
SET_TIMER = Turn.tool("set_timer", {"duration": "20 minutes", "label": "check the deploy"})


def report_tool_result(messages: Any, tool_specs: Any, system_prompt: Any) -> Turn:
    """Answer with the tool result the server was sent (OpenAI, llama.cpp or Ollama format)."""
    (tool_message,) = [m for m in messages if m.get("role") == "tool"]
    content = tool_message["content"]
    text = content if isinstance(content, str) else content[0]["text"]  # llama.cpp: parts
    return Turn.text("Done: " + json.loads(text)["message"])


def make_supervisor(
    tmp_path: Path, out: io.StringIO, clock: FakeClock | None = None, **llm: Any
) -> Supervisor:
    config = Config.model_validate(
        {
            "roles": {"directory": str(ROLES)},
            "storage": {"path": str(tmp_path / "intentd.db")},
            "http": {"port": 0},
            "llm": {"models": {"DEFAULT": "test-model"}, "retry_attempts": 1, **llm},
        }
    )
    return Supervisor(config=config, clock=clock or FakeClock(), stdout=out)


async def ask(supervisor: Supervisor, text: str) -> WorkflowRun:
    """Publish a USER_REQUEST and return its workflow run once it has ended."""
    engine, bus = supervisor.workflow_engine, supervisor.message_bus
    earlier = set(engine.runs)
    bus.publish(
        "test", "USER_REQUEST", {"text": text, "channel_id": "console:thread-7", "user_id": "U1"}
    )
    await bus.drain()
    (run_id,) = set(engine.runs) - earlier
    return await engine.wait(run_id)


async def test_a_request_sets_a_timer_through_the_openai_provider_streaming(tmp_path) -> None:
    out = io.StringIO()
    turns = [ROUTE_TO_TIMER, SET_TIMER, report_tool_result]
    async with FakeOpenAIServer(turns) as server:
        supervisor = make_supervisor(tmp_path, out, provider="openai", base_url=server.base_url)
        async with supervisor.running():
            run = await ask(supervisor, "remind me in 20 minutes to check the deploy")
            assert supervisor.timers is not None
            (timer,) = await supervisor.timers.list()
    assert (run.state, run.role, timer.channel_id) == ("completed", "timer", "console:thread-7")
    assert all(request["stream"] for request in server.requests)
    tool_reply = json.loads(server.requests[2]["messages"][-1]["content"])
    assert tool_reply["result"]["timer_id"] == timer.timer_id
    assert f"thread-7 @U1 Done: Timer {timer.timer_id} set for" in out.getvalue()


async def test_a_request_sets_a_timer_through_the_ollama_provider(tmp_path) -> None:
    out = io.StringIO()
    async with FakeOllamaServer([ROUTE_TO_TIMER, SET_TIMER, report_tool_result]) as server:
        supervisor = make_supervisor(tmp_path, out, provider="ollama", base_url=server.host)
        async with supervisor.running():
            run = await ask(supervisor, "remind me in 20 minutes to check the deploy")
            assert supervisor.timers is not None
            (timer,) = await supervisor.timers.list()
    assert (run.state, timer.label) == ("completed", "check the deploy")
    assert f"Done: Timer {timer.timer_id} set for" in out.getvalue()


@pytest.mark.parametrize("server_type", [FakeOpenAIServer, FakeOllamaServer])
async def test_a_429_fails_the_workflow_with_a_readable_reply(tmp_path, server_type) -> None:
    out = io.StringIO()
    async with server_type([Turn.throttle(retry_after="1")]) as server:
        address = getattr(server, "base_url", None) or server.host
        provider = "openai" if server_type is FakeOpenAIServer else "ollama"
        supervisor = make_supervisor(tmp_path, out, provider=provider, base_url=address)
        async with supervisor.running():
            run = await ask(supervisor, "remind me")
    assert run.failure == "throttled" and "rate limit exceeded" in (run.error or "")
    assert (
        "thread-7 @U1 Sorry, the model provider is rate limiting requests (HTTP 429); try again "
        "in a minute.\n"
    ) in out.getvalue()


async def test_a_429_is_retried_with_the_configured_zero_delay(tmp_path) -> None:
    out = io.StringIO()
    async with FakeOpenAIServer([Turn.throttle(), ROUTE_TO_TIMER, Turn.text("ok")]) as server:
        supervisor = make_supervisor(
            tmp_path, out, provider="openai", base_url=server.base_url,
            retry_attempts=2, retry_delay=0,
        )  # fmt: skip
        async with supervisor.running():
            run = await ask(supervisor, "remind me")
    assert (run.state, run.answer, len(server.requests)) == ("completed", "ok", 3)


async def test_a_workflow_with_async_tools_against_ollama_starts_no_thread(tmp_path) -> None:
    out = io.StringIO()
    async with FakeOllamaServer([ROUTE_TO_TIMER, SET_TIMER, report_tool_result]) as server:
        supervisor = make_supervisor(tmp_path, out, provider="ollama", base_url=server.host)
        async with supervisor.running():
            before = set(threading.enumerate())
            run = await ask(supervisor, "remind me in 20 minutes to check the deploy")
            after = set(threading.enumerate())
    assert run.state == "completed" and run.tool_calls[0]["success"] is True
    assert after == before


async def test_openai_starts_only_the_loops_executor_thread_once_for_all_workflows(
    tmp_path,
) -> None:
    # Third-party: the openai client runs get_platform via asyncio.to_thread on its first
    # request. The factory shares one client, so two workflows still add just that one thread.
    out = io.StringIO()
    turns = [ROUTE_TO_TIMER, SET_TIMER, report_tool_result] * 2
    async with FakeOpenAIServer(turns) as server:
        supervisor = make_supervisor(tmp_path, out, provider="openai", base_url=server.base_url)
        async with supervisor.running():
            before = set(threading.enumerate())
            runs = [await ask(supervisor, "remind me in 20 minutes") for _ in range(2)]
            new = set(threading.enumerate()) - before
    assert [run.state for run in runs] == ["completed", "completed"]
    assert [thread.name for thread in new] == ["asyncio_0"]


async def test_without_a_provider_a_request_is_answered_with_how_to_configure_one(
    tmp_path,
) -> None:
    out = io.StringIO()
    supervisor = make_supervisor(tmp_path, out, provider="none")
    async with supervisor.running():
        supervisor.message_bus.publish(
            "test",
            "USER_REQUEST",
            {"text": "remind me", "channel_id": "console:thread-7", "user_id": "U1"},
        )
        await supervisor.message_bus.drain()
    assert "thread-7 @U1 No language model is configured" in out.getvalue()
    assert supervisor.workflow_engine.active_count == 0


async def test_stopping_the_daemon_cancels_each_run_and_tells_its_user(tmp_path) -> None:
    out = io.StringIO()
    async with FakeOpenAIServer([Turn.hang(), Turn.hang()]) as server:
        supervisor = make_supervisor(tmp_path, out, provider="openai", base_url=server.base_url)
        async with supervisor.running():
            for user in ("U1", "U2"):
                supervisor.message_bus.publish(
                    "test", "USER_REQUEST",
                    {"text": "remind me", "channel_id": f"console:{user}", "user_id": user},
                )  # fmt: skip
            await server.received(2)
            runs = list(supervisor.workflow_engine.runs.values())
    assert [run.state for run in runs] == ["cancelled", "cancelled"]
    assert supervisor.workflow_engine.active_count == 0
    stopped = (
        "Sorry, intentd stopped before it could finish this request; ask again once it is back."
    )
    assert f"U1 @U1 {stopped}\n" in out.getvalue() and f"U2 @U2 {stopped}\n" in out.getvalue()


async def test_the_heartbeat_forgets_workflows_finished_an_hour_ago(tmp_path) -> None:
    out = io.StringIO()
    clock = FakeClock()  # heartbeats every 30 s; runs are kept for an hour after they end
    async with FakeOpenAIServer([Turn.text('{"route": "none", "confidence": 0}')]) as server:
        supervisor = make_supervisor(
            tmp_path, out, clock, provider="openai", base_url=server.base_url
        )
        async with supervisor.running():
            run = await ask(supervisor, "sing")
            await clock.advance(3590)
            assert run.run_id in supervisor.workflow_engine.runs
            await clock.advance(40)
            assert run.run_id not in supervisor.workflow_engine.runs


async def test_a_hanging_router_never_blocks_timers_or_other_roles(tmp_path) -> None:
    out, clock = io.StringIO(), FakeClock()
    async with FakeOpenAIServer([Turn.hang()]) as server:
        supervisor = make_supervisor(
            tmp_path, out, clock, provider="openai", base_url=server.base_url
        )
        async with supervisor.running():
            supervisor.message_bus.publish("test", "USER_REQUEST", {"text": "remind me"})
            await supervisor.message_bus.drain()
            assert supervisor.timers is not None
            await supervisor.timers.create(duration=10, label="tea", channel_id="console:ops")
            await clock.advance(10)
            await supervisor.message_bus.drain()
            (run,) = supervisor.workflow_engine.runs.values()
            assert run.state == "running"
            assert "ops Timer expired: tea" in out.getvalue()


async def test_the_heartbeat_reports_running_workflows(tmp_path) -> None:
    out, clock = io.StringIO(), FakeClock()
    beats: list[dict[str, Any]] = []
    async with FakeOpenAIServer([Turn.hang()]) as server:
        supervisor = make_supervisor(
            tmp_path, out, clock, provider="openai", base_url=server.base_url
        )
        supervisor.message_bus.subscribe(
            "test", "HEARTBEAT_TICK", lambda data, context: beats.append(data) or []
        )
        async with supervisor.running():
            await clock.advance(30)
            supervisor.message_bus.publish("test", "USER_REQUEST", {"text": "remind me"})
            await clock.advance(30)
            await supervisor.message_bus.drain()
    assert [beat["active_workflows"] for beat in beats] == [0, 1]


async def test_a_request_sets_a_timer_through_the_llamacpp_provider(tmp_path) -> None:
    out = io.StringIO()
    async with FakeOpenAIServer([ROUTE_TO_TIMER, SET_TIMER, report_tool_result]) as server:
        address = f"http://127.0.0.1:{server.port}"  # llama.cpp's server: /v1/chat/completions
        supervisor = make_supervisor(tmp_path, out, provider="llamacpp", base_url=address)
        async with supervisor.running():
            run = await ask(supervisor, "remind me in 20 minutes to check the deploy")
            assert supervisor.timers is not None
            (timer,) = await supervisor.timers.list()
    assert (run.state, timer.label) == ("completed", "check the deploy")
    assert f"Done: Timer {timer.timer_id} set for" in out.getvalue()


async def test_constructing_a_supervisor_with_a_provider_starts_no_thread(tmp_path) -> None:
    before = threading.active_count()
    supervisor = make_supervisor(
        tmp_path, io.StringIO(), provider="openai", base_url="http://127.0.0.1:9/v1"
    )
    assert threading.active_count() == before
    async with supervisor.running():
        assert supervisor.workflow_engine is not None
        assert supervisor.models.get("WEAK") is supervisor.workflow_engine.models["WEAK"]


async def test_a_server_error_is_answered_in_one_sentence_with_the_detail_audited(
    tmp_path,
) -> None:
    out = io.StringIO()
    async with FakeOpenAIServer([Turn.fail(RuntimeError("model crashed"), status=500)]) as server:
        supervisor = make_supervisor(tmp_path, out, provider="openai", base_url=server.base_url)
        async with supervisor.running():
            run = await ask(supervisor, "remind me")
    assert run.failure == "server_error"
    assert run.error is not None
    assert run.error.startswith("InternalServerError: Error code: 500")
    assert "model crashed" in run.error
    assert (
        "thread-7 @U1 Sorry, the model server had an internal error (HTTP 500); try again later.\n"
    ) in out.getvalue()
    assert "InternalServerError" not in out.getvalue().split("thread-7 @U1 ")[-1]


def throttle_each_request_once(seen: set[str]) -> Any:
    """Throttle the first call of every request, route it to the timer role, answer 'ok'."""

    def turn(messages: Any, tool_specs: Any, system_prompt: Any) -> Turn:
        asked = json.dumps(messages[0])
        if "route" not in (system_prompt or ""):
            return Turn.text("ok")
        if asked in seen:
            return ROUTE_TO_TIMER
        seen.add(asked)
        return Turn.throttle(retry_after="0")

    return turn


async def test_four_runs_throttled_at_the_same_time_all_complete(tmp_path) -> None:
    out = io.StringIO()
    async with FakeOpenAIServer([throttle_each_request_once(set())] * 12) as server:
        supervisor = make_supervisor(
            tmp_path, out, provider="openai", base_url=server.base_url,
            retry_attempts=2, retry_delay=0, max_concurrent=4,
        )  # fmt: skip
        async with supervisor.running():
            engine, bus = supervisor.workflow_engine, supervisor.message_bus
            for n in range(4):
                bus.publish("test", "USER_REQUEST", {"text": f"remind me {n}", "user_id": f"U{n}"})
            await bus.drain()
            runs = [await engine.wait(run_id) for run_id in list(engine.runs)]
    assert [(run.state, run.retries) for run in runs] == [("completed", 1)] * 4
    assert [request.get("tools") is None for request in server.requests].count(True) == 8


def openai_parts(server: FakeOpenAIServer, **engine: Any) -> tuple[WorkflowParts, Models]:
    """Return workflow parts over real OpenAI models pointed at ``server``."""
    config = LLMConfig(provider="openai", base_url=server.base_url, models={"DEFAULT": "m"})
    models = build_models(config)
    return WorkflowParts(models.by_type, **engine), models


def request_for(user: str = "U1") -> WorkflowIntent:
    params = {"request": "remind me", "channel_id": "slack:C1", "user_id": user}
    return WorkflowIntent(workflow_type="route", parameters=params)


async def test_the_retry_waits_what_retry_after_asks_on_the_clock() -> None:
    turns = [Turn.throttle(retry_after="7"), ROUTE_TO_TIMER, Turn.text("ok")]
    async with FakeOpenAIServer(turns) as server:
        parts, models = openai_parts(server, retry_attempts=2, retry_delay=0)
        async with parts.running():
            run_id = await parts.engine.start_workflow_intent(request_for())
            ended = asyncio.ensure_future(parts.engine.wait(run_id))
            await asyncio.wait({ended, asyncio.ensure_future(parts.waiting.wait())},
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            await parts.clock.advance(6.9)
            assert (len(server.requests), ended.done()) == (1, False)
            await parts.clock.advance(0.1)
            run = await ended
        await models.aclose()
    assert (run.state, run.answer, parts.waits, len(server.requests)) == (
        "completed",
        "ok",
        [7.0],
        3,
    )


async def test_a_retry_after_longer_than_llm_timeout_is_not_waited_for() -> None:
    async with FakeOpenAIServer([Turn.throttle(retry_after="600")]) as server:
        parts, models = openai_parts(server, retry_attempts=3, retry_delay=0, timeout=120)
        async with parts.running():
            run = await parts.engine.wait(await parts.engine.start_workflow_intent(request_for()))
        await models.aclose()
    assert (run.failure, parts.waits, len(server.requests)) == ("throttled", [], 1)


async def test_a_failure_after_set_timer_says_the_timer_is_set(tmp_path) -> None:
    out = io.StringIO()
    turns = [ROUTE_TO_TIMER, SET_TIMER, Turn.fail(RuntimeError("model crashed"), status=500)]
    async with FakeOpenAIServer(turns) as server:
        supervisor = make_supervisor(tmp_path, out, provider="openai", base_url=server.base_url)
        async with supervisor.running():
            run = await ask(supervisor, "remind me in 20 minutes to check the deploy")
            assert supervisor.timers is not None
            (timer,) = await supervisor.timers.list()
    assert (run.state, run.failure) == ("failed", "server_error")
    (reply,) = [line for line in out.getvalue().splitlines() if "thread-7 @U1" in line]
    assert f"thread-7 @U1 Timer {timer.timer_id} set for " in reply
    assert reply.endswith(
        "Then the model server had an internal error (HTTP 500), so I stopped there; "
        "what is listed here is done."
    )


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        (401, "Sorry, the model provider refused intentd's credentials (HTTP 401); ask an "
              "operator to check llm.api_key."),
        (400, "Sorry, the model server rejected the request (HTTP 400); an operator can find why "
              "in the log."),
        (503, "Sorry, the model server had an internal error (HTTP 503); try again later."),
    ],
)  # fmt: skip
async def test_each_refusal_is_told_in_one_sentence(tmp_path, status, reply) -> None:
    out = io.StringIO()
    async with FakeOpenAIServer([Turn.fail(RuntimeError("no"), status=status)]) as server:
        supervisor = make_supervisor(tmp_path, out, provider="openai", base_url=server.base_url)
        async with supervisor.running():
            await ask(supervisor, "remind me")
    assert f"thread-7 @U1 {reply}\n" in out.getvalue()


async def test_an_unreachable_server_is_told_in_one_sentence(tmp_path) -> None:
    out = io.StringIO()
    supervisor = make_supervisor(tmp_path, out, provider="openai", base_url="http://127.0.0.1:9/v1")
    async with supervisor.running():
        run = await ask(supervisor, "remind me")
    assert run.failure == "unreachable"
    assert (
        "thread-7 @U1 Sorry, the model server cannot be reached; ask an operator to check that "
        "it runs at llm.base_url.\n"
    ) in out.getvalue()
