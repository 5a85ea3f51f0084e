"""Fake chat servers on 127.0.0.1 in each provider's wire format, driven by scripted turns.

OpenAI-compatible (also llama.cpp's server and what LiteLLM's ``openai/`` models talk to),
Ollama, Anthropic Messages and Bedrock ConverseStream. Each request takes the next Turn (see
scripted_model.py) and answers it as the provider does, streaming or not as the request asks; a
`Turn.fail`/`Turn.throttle` turn becomes the provider's HTTP error (with Retry-After when set).
Request bodies are recorded in `requests`. A script that runs out answers HTTP 500 with the
ScriptError text. A request the real API refuses (a missing API key, an empty ``tools`` array on
a strict server) is refused the same way.
"""

import asyncio
import binascii
import itertools
import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from aiohttp import web

from llm_provider.scripted_model import Script, ScriptError, Turn, TurnSource


class _FakeChatServer(ABC):
    """Serve one chat endpoint on an ephemeral 127.0.0.1 port for the lifetime of the context."""

    path: ClassVar[str]
    streams_by_default: ClassVar[bool]
    stream_content_type: ClassVar[str]

    def __init__(self, turns: Sequence[TurnSource]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._script = Script(turns, owner=type(self).__name__)
        self._runner: web.AppRunner | None = None
        self._hanging: set[asyncio.Future[None]] = set()
        self._arrived = asyncio.Condition()

    async def received(self, count: int) -> None:
        """Return once ``count`` requests have arrived."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        for waiter in self._hanging:
            waiter.cancel()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        async with self._arrived:
            self.requests.append(body)
            self._arrived.notify_all()
        refusal = self._refuse(request, body)
        if refusal is not None:
            return self._error(*refusal, {})
        messages, tools, system = self._parse(body)
        try:
            turn = self._script.next(messages, tools, system)
        except ScriptError as err:
            return self._error(500, str(err), {})
        if turn.hangs:
            waiter = asyncio.get_running_loop().create_future()
            self._hanging.add(waiter)
            await waiter
        if turn.error is not None:
            headers = {"Retry-After": turn.retry_after} if turn.retry_after is not None else {}
            return self._error(turn.status, str(turn.error), headers)
        if not self._streams(request, body):
            return web.json_response(self._complete(body, turn))
        response = web.StreamResponse(headers={"Content-Type": self.stream_content_type})
        await response.prepare(request)
        for chunk in self._chunks(body, turn):
            await response.write(chunk if isinstance(chunk, bytes) else chunk.encode())
        await response.write_eof()
        return response

    def _streams(self, request: web.Request, body: dict[str, Any]) -> bool:
        return bool(body.get("stream", self.streams_by_default))

    def _refuse(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str] | None:
        """Return (status, message) for a request the real API refuses, else None."""
        return None

    def _parse(self, body: dict[str, Any]) -> tuple[list[Any], list[Any], str | None]:
        """Return the request's conversation messages, tools and system prompt."""
        messages = [m for m in body.get("messages", []) if m.get("role") != "system"]
        system = [
            _text(m["content"]) for m in body.get("messages", []) if m.get("role") == "system"
        ]
        return messages, body.get("tools") or [], "\n".join(system) or None

    @abstractmethod
    def _error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        """Build the provider's error response."""

    @abstractmethod
    def _complete(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        """Build the provider's non-streaming answer to the turn."""

    @abstractmethod
    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[str] | list[bytes]:
        """Build the provider's streamed answer to the turn, one encoded event per item."""


def _text(content: Any) -> str:
    """Return a message's text, given as a string or as a list of text parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _halves(text: str) -> list[str]:
    """Split text in two non-empty pieces when it can, so clients must join deltas."""
    middle = len(text) // 2
    return [piece for piece in (text[:middle], text[middle:]) if piece]


class FakeOpenAIServer(_FakeChatServer):
    """Serve `POST /v1/chat/completions` as JSON or SSE; `base_url` ends with `/v1`.

    ``strict=True`` validates as vLLM and some hosted APIs do: an empty ``tools`` array, or
    ``tool_choice`` without tools, is a 400.
    """

    path = "/v1/chat/completions"
    streams_by_default = False
    stream_content_type = "text/event-stream"

    def __init__(self, turns: Sequence[TurnSource], *, strict: bool = False) -> None:
        super().__init__(turns)
        self.strict = strict

    def _refuse(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str] | None:
        if not self.strict:
            return None
        if "tools" in body and not body["tools"]:
            return 400, "`tools` must not be an empty array"
        if "tool_choice" in body and not body.get("tools"):
            return 400, "When using `tool_choice`, `tools` must be set."
        return None

    @property
    def base_url(self) -> str:
        """Return the base URL to give an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def _error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        code = {429: "rate_limit_exceeded", 400: "invalid_request_error"}.get(
            status, "server_error"
        )
        error = {"message": message, "type": code, "param": None, "code": code}
        return web.json_response({"error": error}, status=status, headers=headers)

    @staticmethod
    def _usage(turn: Turn) -> dict[str, int]:
        return {
            "prompt_tokens": turn.input_tokens,
            "completion_tokens": turn.output_tokens,
            "total_tokens": turn.input_tokens + turn.output_tokens,
        }

    @staticmethod
    def _finish_reason(turn: Turn) -> str:
        if turn.truncated:
            return "length"
        return "tool_calls" if turn.calls else "stop"

    def _complete(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": turn.reply or None}
        if turn.calls:
            message["tool_calls"] = [
                {
                    "id": call.tool_use_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.input)},
                }
                for call in turn.calls
            ]
        choice = {"index": 0, "message": message, "finish_reason": self._finish_reason(turn)}
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            **({"usage": self._usage(turn)} if turn.reports_usage else {}),
        }

    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[str] | list[bytes]:
        deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant"}, None)]
        deltas += [({"content": piece}, None) for piece in _halves(turn.reply)]
        for index, call in enumerate(turn.calls):
            head = {"index": index, "id": call.tool_use_id, "type": "function"}
            deltas.append(({"tool_calls": [{**head, "function": {"name": call.name}}]}, None))
            deltas += [
                ({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None)
                for piece in _halves(json.dumps(call.input))
            ]
        deltas.append(({}, self._finish_reason(turn)))
        base = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
        }
        chunks = [
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            for delta, finish in deltas
        ]
        if (body.get("stream_options") or {}).get("include_usage") and turn.reports_usage:
            chunks.append({**base, "choices": [], "usage": self._usage(turn)})
        return [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]


class FakeOllamaServer(_FakeChatServer):
    """Serve `POST /api/chat` as NDJSON or one JSON object; `host` has no path."""

    path = "/api/chat"
    streams_by_default = True
    stream_content_type = "application/x-ndjson"

    @property
    def host(self) -> str:
        """Return the host URL to give an Ollama client."""
        return f"http://127.0.0.1:{self.port}"

    def _error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        return web.json_response({"error": message}, status=status, headers=headers)

    @staticmethod
    def _line(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": body["model"],
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", **message},
            "done": False,
        }

    @staticmethod
    def _tool_calls(turn: Turn) -> list[dict[str, Any]]:
        return [{"function": {"name": c.name, "arguments": c.input}} for c in turn.calls]

    def _last(self, body: dict[str, Any], turn: Turn, message: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._line(body, message),
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "load_duration": 0,
            "prompt_eval_count": turn.input_tokens,
            "prompt_eval_duration": 0,
            "eval_count": turn.output_tokens,
            "eval_duration": 0,
        }

    def _complete(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        message: dict[str, Any] = {"content": turn.reply}
        if turn.calls:
            message["tool_calls"] = self._tool_calls(turn)
        return self._last(body, turn, message)

    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[str] | list[bytes]:
        lines = [self._line(body, {"content": piece}) for piece in _halves(turn.reply)]
        if turn.calls:
            lines.append(self._line(body, {"content": "", "tool_calls": self._tool_calls(turn)}))
        lines.append(self._last(body, turn, {"content": ""}))
        return [json.dumps(line) + "\n" for line in lines]


class FakeAnthropicServer(_FakeChatServer):
    """Serve `POST /v1/messages` (Anthropic Messages) as JSON or SSE events; needs an API key.

    A request without ``x-api-key`` or ``anthropic-version``, without ``max_tokens``, or whose
    messages do not start with the user and alternate, is refused as the API does.
    """

    path = "/v1/messages"
    streams_by_default = False
    stream_content_type = "text/event-stream"

    @property
    def base_url(self) -> str:
        """Return the base URL to give an Anthropic client (it appends /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    def _refuse(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str] | None:
        if not request.headers.get("x-api-key"):
            return 401, "x-api-key header is required"
        if not request.headers.get("anthropic-version"):
            return 400, "anthropic-version header is required"
        if not isinstance(body.get("max_tokens"), int):
            return 400, "max_tokens: Field required"
        roles = [m.get("role") for m in body.get("messages", [])]
        if not roles or roles[0] != "user" or any(a == b for a, b in itertools.pairwise(roles)):
            return 400, f"messages: roles must alternate starting with user, got {roles}"
        return None

    def _parse(self, body: dict[str, Any]) -> tuple[list[Any], list[Any], str | None]:
        system = body.get("system")
        if isinstance(system, list):
            system = "\n".join(block.get("text", "") for block in system)
        return body.get("messages", []), body.get("tools") or [], system

    def _error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        kind = {
            400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
            529: "overloaded_error",
        }.get(status, "api_error")  # fmt: skip
        error = {"type": "error", "error": {"type": kind, "message": message}}
        return web.json_response(error, status=status, headers=headers)

    @staticmethod
    def _stop_reason(turn: Turn) -> str:
        if turn.truncated:
            return "max_tokens"
        return "tool_use" if turn.calls else "end_turn"

    def _blocks(self, turn: Turn) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.reply}] if turn.reply else []
        blocks += [
            {"type": "tool_use", "id": call.tool_use_id, "name": call.name, "input": call.input}
            for call in turn.calls
        ]
        return blocks

    def _message(self, body: dict[str, Any], content: list[Any], turn: Turn) -> dict[str, Any]:
        return {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": turn.input_tokens, "output_tokens": 1},
        }

    def _complete(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        message = self._message(body, self._blocks(turn), turn)
        message["stop_reason"] = self._stop_reason(turn)
        message["usage"]["output_tokens"] = turn.output_tokens
        return message

    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[str] | list[bytes]:
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": self._message(body, [], turn)},
            {"type": "ping"},
        ]
        for index, block in enumerate(self._blocks(turn)):
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": piece} for piece in _halves(block["text"])]
            else:
                start = {**block, "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": piece}
                    for piece in ["", *_halves(json.dumps(block["input"]))]
                ]
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
            events.append({"type": "content_block_stop", "index": index})
        events.append({
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(turn), "stop_sequence": None},
            "usage": {"output_tokens": turn.output_tokens},
        })  # fmt: skip
        events.append({"type": "message_stop"})
        return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events]


class FakeBedrockServer(_FakeChatServer):
    """Serve Bedrock Runtime `POST /model/{modelId}/converse-stream` (and `/converse`).

    The stream is AWS event-stream binary framing (prelude with lengths and CRC32, string headers
    ``:event-type``/``:content-type``/``:message-type``, JSON payload, message CRC32); errors are
    JSON with ``x-amzn-ErrorType`` (ThrottlingException on 429).
    """

    path = "/model/{model_id}/{operation}"
    streams_by_default = True
    stream_content_type = "application/vnd.amazon.eventstream"

    @property
    def endpoint_url(self) -> str:
        """Return the endpoint URL to give a bedrock-runtime client."""
        return f"http://127.0.0.1:{self.port}"

    def _streams(self, request: web.Request, body: dict[str, Any]) -> bool:
        return request.match_info["operation"] == "converse-stream"

    def _refuse(self, request: web.Request, body: dict[str, Any]) -> tuple[int, str] | None:
        if request.match_info["operation"] not in ("converse", "converse-stream"):
            return 404, f"unknown operation {request.match_info['operation']!r}"
        if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            return 403, "Missing Authentication Token"
        tools = (body.get("toolConfig") or {}).get("tools")
        if tools is not None and not tools:
            return 400, "toolConfig.tools: Member must have length greater than or equal to 1"
        return None

    def _parse(self, body: dict[str, Any]) -> tuple[list[Any], list[Any], str | None]:
        system = "\n".join(block.get("text", "") for block in body.get("system") or []) or None
        return body.get("messages", []), (body.get("toolConfig") or {}).get("tools") or [], system

    def _error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        kind = {
            400: "ValidationException", 403: "AccessDeniedException", 404: "UnknownOperation",
            429: "ThrottlingException",
        }.get(status, "InternalServerException")  # fmt: skip
        return web.json_response(
            {"message": message}, status=status, headers={**headers, "x-amzn-ErrorType": kind}
        )

    @staticmethod
    def _stop_reason(turn: Turn) -> str:
        if turn.truncated:
            return "max_tokens"
        return "tool_use" if turn.calls else "end_turn"

    def _usage(self, turn: Turn) -> dict[str, int]:
        total = turn.input_tokens + turn.output_tokens
        return {"inputTokens": turn.input_tokens, "outputTokens": turn.output_tokens,
                "totalTokens": total}  # fmt: skip

    def _complete(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"text": turn.reply}] if turn.reply else []
        content += [
            {"toolUse": {"toolUseId": c.tool_use_id, "name": c.name, "input": c.input}}
            for c in turn.calls
        ]
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop_reason(turn),
            "usage": self._usage(turn),
            "metrics": {"latencyMs": 1},
        }

    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[str] | list[bytes]:
        events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
        index = 0
        if turn.reply:
            events += [
                ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
                for piece in _halves(turn.reply)
            ]
            events.append(("contentBlockStop", {"contentBlockIndex": 0}))
            index = 1
        for offset, call in enumerate(turn.calls):
            at = index + offset
            start = {"toolUse": {"toolUseId": call.tool_use_id, "name": call.name}}
            events.append(("contentBlockStart", {"contentBlockIndex": at, "start": start}))
            events += [
                ("contentBlockDelta", {"contentBlockIndex": at, "delta": {"toolUse": {"input": p}}})
                for p in _halves(json.dumps(call.input))
            ]
            events.append(("contentBlockStop", {"contentBlockIndex": at}))
        events.append(("messageStop", {"stopReason": self._stop_reason(turn)}))
        events.append(("metadata", {"usage": self._usage(turn), "metrics": {"latencyMs": 1}}))
        return [event_frame(name, payload) for name, payload in events]


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """Encode one AWS event-stream message carrying a JSON event."""
    headers = b"".join(
        _string_header(name, value)
        for name, value in (
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        )
    )
    data = json.dumps(payload).encode()
    prelude = struct.pack(">II", 16 + len(headers) + len(data), len(headers))
    head = prelude + struct.pack(">I", binascii.crc32(prelude))
    message = head + headers + data
    return message + struct.pack(">I", binascii.crc32(message))


def _string_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + b"\x07"
        + struct.pack(">H", len(raw_value))
        + raw_value
    )
