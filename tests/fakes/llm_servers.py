"""Fake OpenAI-compatible and Ollama chat servers on 127.0.0.1, driven by scripted turns.

Each request takes the next Turn (see scripted_model.py) and answers it in the provider's wire
format, streaming or not as the request asks; a `Turn.fail`/`Turn.throttle` turn becomes an HTTP
error (with Retry-After when set). Request bodies are recorded in `requests`. A script that runs
out answers HTTP 500 with the ScriptError text.
"""

import asyncio
import json
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
        self.requests.append(body)
        messages = [m for m in body.get("messages", []) if m.get("role") != "system"]
        system = [m["content"] for m in body.get("messages", []) if m.get("role") == "system"]
        try:
            turn = self._script.next(messages, body.get("tools") or [], "\n".join(system) or None)
        except ScriptError as err:
            return self._error(500, str(err), {})
        if turn.hangs:
            waiter = asyncio.get_running_loop().create_future()
            self._hanging.add(waiter)
            await waiter
        if turn.error is not None:
            headers = {"Retry-After": turn.retry_after} if turn.retry_after is not None else {}
            return self._error(turn.status, str(turn.error), headers)
        if not body.get("stream", self.streams_by_default):
            return web.json_response(self._complete(body, turn))
        response = web.StreamResponse(headers={"Content-Type": self.stream_content_type})
        await response.prepare(request)
        for chunk in self._chunks(body, turn):
            await response.write(chunk.encode())
        await response.write_eof()
        return response

    @abstractmethod
    def _error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        """Build the provider's error response."""

    @abstractmethod
    def _complete(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        """Build the provider's non-streaming answer to the turn."""

    @abstractmethod
    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[str]:
        """Build the provider's streamed answer to the turn, one encoded event per item."""


def _halves(text: str) -> list[str]:
    """Split text in two non-empty pieces when it can, so clients must join deltas."""
    middle = len(text) // 2
    return [piece for piece in (text[:middle], text[middle:]) if piece]


class FakeOpenAIServer(_FakeChatServer):
    """Serve `POST /v1/chat/completions` as JSON or SSE; `base_url` ends with `/v1`."""

    path = "/v1/chat/completions"
    streams_by_default = False
    stream_content_type = "text/event-stream"

    @property
    def base_url(self) -> str:
        """Return the base URL to give an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def _error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        code = "rate_limit_exceeded" if status == 429 else "server_error"
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
            "usage": self._usage(turn),
        }

    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[str]:
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
        if (body.get("stream_options") or {}).get("include_usage"):
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

    def _chunks(self, body: dict[str, Any], turn: Turn) -> list[str]:
        lines = [self._line(body, {"content": piece}) for piece in _halves(turn.reply)]
        if turn.calls:
            lines.append(self._line(body, {"content": "", "tool_calls": self._tool_calls(turn)}))
        lines.append(self._last(body, turn, {"content": ""}))
        return [json.dumps(line) + "\n" for line in lines]
