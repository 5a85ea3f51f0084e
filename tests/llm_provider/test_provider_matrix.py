"""The same timer request through every provider: the real strands provider, a local fake API.

Each case runs a daemon whose provider talks to a fake of that API's wire format on 127.0.0.1:
the router call (no tools) routes to the timer role, whose agent calls set_timer and then reports
the tool's reply. The router request must carry no tools field, the timer must be in the store,
the user must get the answer, and the token usage the fake reported must be audited.
"""

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from common.errors import ConfigError
from llm_provider.scripted_model import Turn
from tests.fakes.llm_servers import (
    FakeAnthropicServer,
    FakeBedrockServer,
    FakeOllamaServer,
    FakeOpenAIServer,
    event_frame,
)
from tests.llm_provider.test_workflow_providers import ROUTE_TO_TIMER, SET_TIMER, ask
from tests.llm_provider.test_workflow_providers import make_supervisor as daemon

TIMER_SET = re.compile(r"Timer (tmr-[\w-]+) set for [^\"\\]+\.")


def report_timer(messages: Any, tool_specs: Any, system_prompt: Any) -> Turn:
    """Answer with the tool's reply, found in the last message whatever the wire format."""
    match = TIMER_SET.search(json.dumps(messages[-1]))
    assert match is not None, f"no set_timer reply in {messages[-1]!r:.300}"
    return Turn.text("Done: " + match.group(0))


@dataclass(frozen=True)
class Case:
    """A provider, the fake of its API, and how to point the provider at the fake."""

    provider: str
    server: type
    address: str  # the fake's attribute that gives llm.base_url
    llm: dict[str, Any]
    server_options: dict[str, Any]

    def tools_of(self, body: dict[str, Any]) -> Any:
        """Return the tools field of a request body in this API's format (None when absent)."""
        if self.server is FakeBedrockServer:
            return body.get("toolConfig")
        if self.server is FakeOllamaServer:  # ollama's client always sends a list; Ollama takes []
            return body.get("tools") or None
        return body.get("tools")


def case(provider: str, server: type, address: str, **llm: Any) -> Any:
    options = llm.pop("server_options", {})
    return pytest.param(Case(provider, server, address, llm, options), id=llm.pop("id", provider))


def _root(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


CASES = [
    case("openai", FakeOpenAIServer, "base_url", id="openai-strict-sse",
         server_options={"strict": True}),
    case("openai", FakeOpenAIServer, "base_url", id="openai-lenient-json", stream=False),
    case("ollama", FakeOllamaServer, "host"),
    case("llamacpp", FakeOpenAIServer, "root", params={"tool_choice": "auto"},
         server_options={"strict": True}),
    case("anthropic", FakeAnthropicServer, "base_url", api_key="test-key"),
    case("litellm", FakeOpenAIServer, "base_url", api_key="test-key",
         models={"DEFAULT": "openai/test-model"}, server_options={"strict": True}),
    case("bedrock", FakeBedrockServer, "endpoint_url"),
]  # fmt: skip


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give boto3 static credentials and a region, as an operator's environment would."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("aws_credentials")
@pytest.mark.parametrize("spec", CASES)
async def test_a_timer_request_is_answered_through_each_provider(tmp_path, spec: Case) -> None:
    out = io.StringIO()
    turns = [ROUTE_TO_TIMER, SET_TIMER, report_timer]
    async with spec.server(turns, **spec.server_options) as server:
        address = _root(server) if spec.address == "root" else getattr(server, spec.address)
        llm = {"provider": spec.provider, "base_url": address, **spec.llm}
        supervisor = daemon(tmp_path, out, **llm)
        async with supervisor.running():
            run = await ask(supervisor, "remind me in 20 minutes to check the deploy")
            assert supervisor.timers is not None
            (timer,) = await supervisor.timers.list()
    assert (run.state, run.role, timer.label) == ("completed", "timer", "check the deploy")
    assert f"thread-7 @U1 Done: Timer {timer.timer_id} set for" in out.getvalue()
    router, role, after_tool = server.requests
    assert spec.tools_of(router) is None and spec.tools_of(role)
    assert timer.timer_id in json.dumps(after_tool)
    assert run.usage == {"inputTokens": 30, "outputTokens": 15, "totalTokens": 45}


async def test_llamacpp_sends_the_configured_tool_choice_with_the_tools_only(tmp_path) -> None:
    turns = [ROUTE_TO_TIMER, Turn.text("no timer needed")]
    async with FakeOpenAIServer(turns, strict=True) as server:
        supervisor = daemon(
            tmp_path, io.StringIO(), provider="llamacpp", base_url=_root(server),
            params={"tool_choice": "auto", "max_tokens": 64},
        )  # fmt: skip
        async with supervisor.running():
            run = await ask(supervisor, "remind me")
    router, role = server.requests
    assert run.state == "completed"
    assert ("tool_choice" in router, role["tool_choice"], role["max_tokens"]) == (False, "auto", 64)


async def test_openai_passes_llm_params_through_to_the_request(tmp_path) -> None:
    turns = [ROUTE_TO_TIMER, Turn.text("ok")]
    async with FakeOpenAIServer(turns, strict=True) as server:
        supervisor = daemon(
            tmp_path, io.StringIO(), provider="openai", base_url=server.base_url,
            params={"tool_choice": "required", "max_tokens": 128},
        )  # fmt: skip
        async with supervisor.running():
            await ask(supervisor, "remind me")
    router, role = server.requests
    assert ("tool_choice" in router, router["max_tokens"]) == (False, 128)
    assert (role["tool_choice"], role["max_tokens"]) == ("required", 128)


async def test_a_strict_server_sees_no_empty_tools_array_from_the_router(tmp_path) -> None:
    turns = [Turn.text('{"route": "none", "confidence": 0.1}')]
    async with FakeOpenAIServer(turns, strict=True) as server:
        supervisor = daemon(tmp_path, io.StringIO(), provider="openai", base_url=server.base_url)
        async with supervisor.running():
            run = await ask(supervisor, "sing")
    assert (run.state, run.failure) == ("completed", None)
    assert "tools" not in server.requests[0]


async def test_usage_is_unknown_when_a_streaming_server_sends_none(tmp_path) -> None:
    turns = [ROUTE_TO_TIMER.without_usage(), Turn.text("ok").without_usage()]
    async with FakeOpenAIServer(turns) as server:
        supervisor = daemon(tmp_path, io.StringIO(), provider="llamacpp", base_url=_root(server))
        async with supervisor.running():
            run = await ask(supervisor, "remind me")
    assert run.usage == {"inputTokens": None, "outputTokens": None, "totalTokens": None}


def test_a_non_streaming_switch_for_a_provider_that_always_streams_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"llm.stream is false but provider 'ollama'"):
        daemon(tmp_path, io.StringIO(), provider="ollama", stream=False)


def test_the_bedrock_fake_frames_events_as_botocore_decodes_them() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(event_frame("messageStop", {"stopReason": "end_turn"}))
    (message,) = list(buffer)
    assert message.headers[":event-type"] == "messageStop"
    assert json.loads(message.payload) == {"stopReason": "end_turn"}
