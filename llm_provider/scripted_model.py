"""A scripted strands Model and the Turn vocabulary shared with the fake LLM servers.

A script is a list of turns, one per model call, in order. A turn answers with text, with tool
calls, with a structured (pydantic) answer, with an error (an exception for ScriptedModel, an HTTP
status for the servers), or never. A turn may also be a callable
`(messages, tool_specs, system_prompt) -> Turn`, called with what the model was sent: strands
messages and tool specs for ScriptedModel, the request's wire-format ones for the fake servers.
"""

import asyncio
import copy
import json
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel
from strands.models import Model
from strands.types.content import ContentBlockStartToolUse, Messages
from strands.types.event_loop import StopReason, Usage
from strands.types.exceptions import ModelThrottledException
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolSpec


class ScriptError(AssertionError):
    """Raised when a call does not fit the script: too many calls, or the wrong kind of turn."""


@dataclass(frozen=True)
class ToolCall:
    """One tool call in a turn; a None id is filled in as `call_<turn>_<index>`."""

    name: str
    input: dict[str, Any]
    tool_use_id: str | None = None


@dataclass(frozen=True)
class Turn:
    """One scripted model answer."""

    reply: str = ""
    calls: tuple[ToolCall, ...] = ()
    parsed: BaseModel | None = None
    error: BaseException | None = None
    status: int = 500
    retry_after: str | None = None
    hangs: bool = False
    input_tokens: int = 10
    output_tokens: int = 5
    reports_usage: bool = True
    truncated: bool = False

    @classmethod
    def text(cls, reply: str) -> "Turn":
        """Answer with text and end the turn."""
        return cls(reply=reply)

    @classmethod
    def tool(
        cls, name: str, input: dict[str, Any], tool_use_id: str | None = None, *, reply: str = ""
    ) -> "Turn":
        """Ask for one tool call, optionally after some text."""
        return cls(reply=reply, calls=(ToolCall(name, input, tool_use_id),))

    @classmethod
    def tools(cls, *calls: ToolCall, reply: str = "") -> "Turn":
        """Ask for several tool calls in one turn."""
        return cls(reply=reply, calls=calls)

    @classmethod
    def structured(cls, parsed: BaseModel) -> "Turn":
        """Answer `structured_output` with this instance (and stream it as JSON text)."""
        return cls(reply=parsed.model_dump_json(), parsed=parsed)

    @classmethod
    def fail(
        cls, error: BaseException, *, status: int = 500, retry_after: str | None = None
    ) -> "Turn":
        """Raise `error`; the fake servers answer HTTP `status` with its text instead."""
        return cls(error=error, status=status, retry_after=retry_after)

    @classmethod
    def throttle(cls, retry_after: str | None = None) -> "Turn":
        """Refuse the call as rate limited: ModelThrottledException, or HTTP 429 from a server."""
        error = ModelThrottledException("rate limit exceeded")
        return cls.fail(error, status=429, retry_after=retry_after)

    @classmethod
    def cut(cls, reply: str) -> "Turn":
        """Answer with text that stops at the token limit (max_tokens / finish_reason length)."""
        return cls(reply=reply, truncated=True)

    @classmethod
    def hang(cls) -> "Turn":
        """Never answer, until cancelled."""
        return cls(hangs=True)

    def with_usage(self, input_tokens: int, output_tokens: int) -> "Turn":
        """Return this turn reporting the given token usage."""
        return replace(self, input_tokens=input_tokens, output_tokens=output_tokens)

    def without_usage(self) -> "Turn":
        """Return this turn reporting no token usage at all (as some servers do when streaming)."""
        return replace(self, reports_usage=False)

    @property
    def stop_reason(self) -> StopReason:
        """Return the strands stop reason this turn ends with."""
        if self.truncated:
            return "max_tokens"
        return "tool_use" if self.calls else "end_turn"


TurnSource = Turn | Callable[[Any, Any, str | None], Turn]


@dataclass
class Script:
    """Hand out turns in order, resolving callables and tool-call ids."""

    turns: Sequence[TurnSource]
    owner: str
    used: int = 0

    def next(self, messages: Any, tool_specs: Any, system_prompt: str | None) -> Turn:
        """Return the next turn for a call that was sent these messages, tools and prompt."""
        if self.used >= len(self.turns):
            raise ScriptError(
                f"{self.owner} was called {self.used + 1} times but its script has "
                f"{len(self.turns)} turns; add a Turn for call {self.used + 1}"
            )
        source = self.turns[self.used]
        self.used += 1
        turn = source if isinstance(source, Turn) else source(messages, tool_specs, system_prompt)
        calls = tuple(
            replace(c, tool_use_id=c.tool_use_id or f"call_{self.used}_{i}")
            for i, c in enumerate(turn.calls)
        )
        return replace(turn, calls=calls)


@dataclass(frozen=True)
class Call:
    """What the model was sent in one call (messages are a snapshot)."""

    messages: Messages
    tool_names: list[str]
    system_prompt: str | None


class ScriptedModel(Model):
    """A strands Model that plays a script of turns and records every call in `calls`."""

    def __init__(self, turns: Sequence[TurnSource]) -> None:
        self.config: dict[str, Any] = {"model_id": "scripted"}
        self.calls: list[Call] = []
        self._script = Script(turns, owner="ScriptedModel")

    def update_config(self, **model_config: Any) -> None:
        """Merge the given settings into the config."""
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        """Return the config."""
        return self.config

    async def _next(self, messages: Messages, specs: list[ToolSpec], prompt: str | None) -> Turn:
        self.calls.append(Call(copy.deepcopy(messages), [s["name"] for s in specs], prompt))
        turn = self._script.next(messages, specs, prompt)
        if turn.hangs:
            await asyncio.get_running_loop().create_future()
        if turn.error is not None:
            raise turn.error
        return turn

    async def structured_output(
        self,
        output_model: type[BaseModel],
        prompt: Messages,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield the next turn's scripted instance of `output_model`."""
        turn = await self._next(prompt, [], system_prompt)
        if not isinstance(turn.parsed, output_model):
            raise ScriptError(
                f"ScriptedModel call {len(self.calls)} asked for structured output "
                f"{output_model.__name__} but the turn holds {turn.parsed!r}; "
                f"script Turn.structured({output_model.__name__}(...))"
            )
        yield {"output": turn.parsed}

    async def stream(
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield the next turn as strands stream events."""
        turn = await self._next(messages, tool_specs or [], system_prompt)
        yield {"messageStart": {"role": "assistant"}}
        if turn.reply:
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": turn.reply}}}
            yield {"contentBlockStop": {}}
        for call in turn.calls:
            tool_use: ContentBlockStartToolUse = {
                "name": call.name,
                "toolUseId": call.tool_use_id or "",
            }
            yield {"contentBlockStart": {"start": {"toolUse": tool_use}}}
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(call.input)}}}}
            yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": turn.stop_reason}}
        if not turn.reports_usage:
            return
        usage: Usage = {
            "inputTokens": turn.input_tokens,
            "outputTokens": turn.output_tokens,
            "totalTokens": turn.input_tokens + turn.output_tokens,
        }
        yield {"metadata": {"usage": usage, "metrics": {"latencyMs": 0}}}
