"""A local stand-in for Slack: the Web API and Socket Mode, spoken over HTTP/WebSocket on 127.0.0.1.

Drive it with slack-sdk's real clients: `AsyncWebClient(token, base_url=slack.base_url)` and
`SocketModeClient(app_token, web_client=AsyncWebClient(base_url=slack.base_url))`. It is one
workspace with the channels given up front and messages kept in memory; faults are scripted per
method. Everything runs on the test's event loop; waits use conditions with timeouts, never sleeps.

Hostile as Slack is: every `apps.connections.open` URL carries a ticket good for one handshake;
handshakes can be refused, hello and pongs withheld, and any frame sent raw. History and replies
page with opaque cursors and clamp `limit` to what the app may read (15 for apps outside the
Marketplace). Message timestamps come from the clock given, as Slack's come from Slack's clock.
`signed_headers` signs a request body the way Slack signs Events API requests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from common.clock import Clock

MAX_TEXT_CHARS = 40_000
MAX_PAGE = 1000  # Slack's ceiling for limit on history and replies
NON_MARKETPLACE_PAGE = 15  # ... and for apps distributed outside the Marketplace since 2025
BOT_USER_ID, BOT_ID, TEAM_ID, APP_ID = "UBOT", "BBOT", "T0FAKE", "A0FAKE"
AUTH_TEST = {
    "url": "https://fake.slack.com/",
    "team": "Fake Workspace",
    "user": "intentd",
    "team_id": TEAM_ID,
    "user_id": BOT_USER_ID,
    "bot_id": BOT_ID,
}
NO_MORE = {"next_cursor": ""}


@dataclass(frozen=True)
class Fault:
    """One scripted failure of a Web API call; build it with the class methods."""

    status: int = 200
    slack_error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0

    @classmethod
    def ratelimited(cls, retry_after: str = "1") -> Fault:
        """Answer 429 with a Retry-After header and error "ratelimited", as Slack does."""
        return cls(429, "ratelimited", {"Retry-After": retry_after})

    @classmethod
    def http_status(cls, status: int) -> Fault:
        """Answer with a bare HTTP error status and an HTML body, as a failing gateway does."""
        return cls(status)

    @classmethod
    def error(cls, error: str) -> Fault:
        """Answer 200 with {"ok": false, "error": error}."""
        return cls(200, error)

    @classmethod
    def drop_after_recording(cls) -> Fault:
        """Carry the call out (a post is delivered), then close the connection unanswered."""
        return cls(drop=True)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Carry the call out (a post is delivered), then answer only after ``seconds``."""
        return cls(delay=seconds)


@dataclass(frozen=True)
class Call:
    """One Web API request as received, whatever its outcome."""

    method: str
    at: float  # the loop's clock
    args: dict[str, Any]


@dataclass(frozen=True)
class Post:
    """One delivered chat.postMessage."""

    channel: str
    text: str | None
    ts: str
    thread_ts: str | None = None
    mrkdwn: bool | None = None
    metadata: dict[str, Any] | None = None
    blocks: list[dict[str, Any]] | None = None
    user: str = BOT_USER_ID  # who said it: the bot for chat.postMessage, a person for say()


@dataclass(frozen=True)
class Ack:
    """A Socket Mode client's acknowledgement of one envelope."""

    envelope_id: str
    payload: dict[str, Any] | None
    latency: float  # seconds from sending the envelope to receiving the ack


class _Refused(Exception):
    """A Web API method's own error code, answered as {"ok": false, "error": code}."""


class FakeSlack:
    """Serve Slack's Web API and Socket Mode for one workspace on an ephemeral 127.0.0.1 port."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        channels: dict[str, str] | None = None,
        timeout: float = 5.0,
        clock: Clock | None = None,
        page_limit: int = MAX_PAGE,
    ) -> None:
        self.bot_token, self.app_token, self.timeout = bot_token, app_token, timeout
        self.channels = dict(channels or {"C0GENERAL": "general"})
        self.clock, self.page_limit = clock, page_limit
        self.posts: list[Post] = []  # the bot's chat.postMessage calls that were carried out
        self.messages: list[Post] = []  # every message in the workspace, the bot's and people's
        self.calls: list[Call] = []
        self.acks: list[Ack] = []
        self.connections = 0
        self.handshakes: list[tuple[str, int]] = []  # (ticket, HTTP status) per WebSocket upgrade
        self.pings_answered = 0
        self.port = 0
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": lambda args: AUTH_TEST,
            "chat.postMessage": self._post_message,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.list": lambda args: {
                "channels": [self._channel(cid) for cid in self.channels],
                "response_metadata": NO_MORE,
            },
            "conversations.info": lambda args: {
                "channel": self._channel(self._resolve(args.get("channel")))
            },
            "apps.connections.open": self._connections_open,
        }
        self._faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self._down = False
        self._sockets: set[web.WebSocketResponse] = set()
        self._live: list[web.WebSocketResponse] = []  # greeted and not told to disconnect
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tickets: set[str] = set()  # issued and not yet used
        self._refuse_handshakes: deque[int] = deque()
        self.hello = True  # False: accept WebSockets but never greet them
        self.pongs = True  # False: never answer a client's ping
        self._changed = asyncio.Condition()
        self._last_ts_us = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        for future in self._pending.values():
            future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """Return the Web API base URL to pass to AsyncWebClient."""
        return f"http://127.0.0.1:{self.port}/api/"

    def fail_next(self, method: str, *faults: Fault) -> None:
        """Queue faults for the next calls of `method`, one call each, in order."""
        if method not in self._methods:
            raise ValueError(
                f"FakeSlack.fail_next: unknown method {method!r}; use one of "
                f"{sorted(self._methods)}"
            )
        self._faults[method].extend(faults)

    def down(self) -> None:
        """Answer every Web API call with HTTP 503 until up() is called."""
        self._down = True

    def up(self) -> None:
        """Serve Web API calls normally again."""
        self._down = False

    # Web API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        elif request.method == "POST":
            args.update(await request.post())
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        token = bearer or args.pop("token", None)
        async with self._changed:
            self.calls.append(Call(method, asyncio.get_running_loop().time(), args))
            self._changed.notify_all()
        if self._down:
            return _gateway_error(503)
        fault = self._faults[method].popleft() if self._faults[method] else None
        if fault and fault.slack_error:
            body = {"ok": False, "error": fault.slack_error}
            return web.json_response(body, status=fault.status, headers=fault.headers)
        if fault and not fault.drop and not fault.delay:
            return _gateway_error(fault.status)
        body = self._answer(method, token, args)
        if fault and fault.delay:
            await asyncio.sleep(fault.delay)  # real time: the client's request timeout must pass
        if fault and fault.drop and request.transport is not None:
            request.transport.close()
        return web.json_response(body)

    def _answer(self, method: str, token: str | None, args: dict[str, Any]) -> dict[str, Any]:
        handler = self._methods.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != wanted:
            known = token in (self.bot_token, self.app_token)
            return {"ok": False, "error": "not_allowed_token_type" if known else "invalid_auth"}
        try:
            return {"ok": True, **handler(args)}
        except _Refused as refused:
            return {"ok": False, "error": str(refused)}

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve(args.get("channel"), by_name=True)
        text, blocks = args.get("text"), _decoded(args.get("blocks"))
        if not text and not blocks and not args.get("attachments"):
            raise _Refused("no_text")
        if text and len(text) > MAX_TEXT_CHARS:
            raise _Refused("msg_too_long")
        thread_ts, mrkdwn = args.get("thread_ts"), _flag(args.get("mrkdwn"))
        metadata = _decoded(args.get("metadata"))
        post = Post(channel, text, self.next_ts(), thread_ts, mrkdwn, metadata, blocks)
        self.posts.append(post)
        self.messages.append(post)
        return {"channel": channel, "ts": post.ts, "message": _message(post, metadata=True)}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve(args.get("channel"))
        top = [
            p
            for p in reversed(self.messages)
            if p.channel == channel and p.thread_ts in (None, p.ts)
        ]
        return self._page(top, args)  # newest first, as Slack lists a channel

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._resolve(args.get("channel")), args.get("ts")
        thread = [p for p in self.messages if p.channel == channel and ts in (p.ts, p.thread_ts)]
        if not ts or not thread:
            raise _Refused("thread_not_found")
        return self._page(thread, args)  # oldest first, as Slack lists a thread

    def _page(self, posts: list[Post], args: dict[str, Any]) -> dict[str, Any]:
        """Answer a history-style query: time window, cursor, limit, metadata only when asked."""
        inclusive = bool(_flag(args.get("inclusive")))
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or "inf")
        inside = [p for p in posts if _within(float(p.ts), oldest, latest, inclusive)]
        start = _cursor_offset(args.get("cursor"))
        limit = min(int(args.get("limit") or 100), self.page_limit)
        metadata = bool(_flag(args.get("include_all_metadata")))
        page = inside[start : start + limit]
        more = start + limit < len(inside)
        cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        return {
            "messages": [_message(p, metadata=metadata) for p in page],
            "has_more": more,
            "response_metadata": {"next_cursor": cursor},
        }

    def say(
        self, channel: str, text: str, *, user: str = "U0ALICE", thread_ts: str | None = None
    ) -> str:
        """Add a person's message to a channel or thread (not a post of the bot); return its ts."""
        message = Post(channel, text, self.next_ts(), thread_ts, user=user)
        self.messages.append(message)
        return message.ts

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/socket?ticket={ticket}"}

    def _resolve(self, channel: str | None, *, by_name: bool = False) -> str:
        """Return the id for a channel id, or for a name ("ops", "#ops") where Slack allows one."""
        if channel in self.channels:
            return channel
        names = {name: cid for cid, name in self.channels.items()}
        if by_name and channel and channel.lstrip("#") in names:
            return names[channel.lstrip("#")]
        raise _Refused("channel_not_found")

    def _channel(self, cid: str) -> dict[str, Any]:
        im = cid.startswith("D")
        return {"id": cid, "name": self.channels[cid], "is_channel": not im, "is_im": im}

    def next_ts(self) -> str:
        """Return a fresh message timestamp from the clock, strictly greater than every earlier."""
        now_us = int(self.clock.time() * 1_000_000) if self.clock else time.time_ns() // 1000
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    # Socket Mode

    def refuse_handshakes(self, *statuses: int) -> None:
        """Answer the next WebSocket upgrades with these HTTP statuses (the ticket is used up)."""
        self._refuse_handshakes.extend(statuses)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        status = 101 if ticket in self._tickets else 401  # a ticket is good for one handshake
        self._tickets.discard(ticket)
        if status == 101 and self._refuse_handshakes:
            status = self._refuse_handshakes.popleft()
        async with self._changed:
            self.handshakes.append((ticket, status))
            self._changed.notify_all()
        if status != 101:
            return web.Response(status=status, text="refused")
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        self._sockets.add(ws)
        debug_info = {"host": "fake-slack", "approximate_connection_time": 3600}
        if self.hello:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._live) + 1,
                    "debug_info": debug_info,
                    "connection_info": {"app_id": APP_ID},
                }
            )
        async with self._changed:
            self._live.append(ws)
            self.connections += 1
            self._changed.notify_all()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING and self.pongs:
                    await ws.pong(msg.data)
                    self.pings_answered += 1
                elif msg.type == WSMsgType.TEXT:
                    reply = json.loads(msg.data)
                    future = self._pending.get(reply.get("envelope_id"))
                    if future is not None and not future.done():
                        future.set_result(reply)
        finally:
            self._sockets.discard(ws)
            if ws in self._live:
                self._live.remove(ws)
        return ws

    async def wait_connected(self, n: int = 1) -> None:
        """Wait until `n` Socket Mode connections have been made in total (reconnects count)."""
        await self._wait_for(
            lambda: self.connections >= n, f"expected {n} Socket Mode connection(s) in total"
        )

    async def send_envelope(self, type: str, payload: dict[str, Any]) -> Ack:
        """Send an envelope to the newest live connection and return the client's ack."""
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {"envelope_id": envelope_id, "type": type, "payload": payload}
        # As on Slack, only slash commands and interactions may be answered with a payload.
        envelope["accepts_response_payload"] = type in ("slash_commands", "interactive")
        if type == "events_api":
            envelope |= {"retry_attempt": 0, "retry_reason": ""}
        return await self.send_frame(json.dumps(envelope), envelope_id=envelope_id, type=type)

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame as it is (text or binary) to the newest live connection; expect no ack."""
        await self._wait_for(lambda: bool(self._live), "expected a live connection")
        ws = self._live[-1]
        await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))

    async def send_frame(self, frame: str, *, envelope_id: str, type: str = "frame") -> Ack:
        """Send a text frame carrying ``envelope_id`` and return the client's ack of it."""
        await self._wait_for(lambda: bool(self._live), "expected a live connection")
        loop = asyncio.get_running_loop()
        self._pending[envelope_id] = future = loop.create_future()
        sent_at = loop.time()
        try:
            await self._live[-1].send_str(frame)
            async with asyncio.timeout(self.timeout):
                reply = await future
        except TimeoutError:
            raise TimeoutError(
                f"FakeSlack: {type} envelope {envelope_id!r} was not acknowledged "
                f"within {self.timeout} s; a Socket Mode listener must "
                f"send SocketModeResponse(envelope_id=...)"
            ) from None
        finally:
            del self._pending[envelope_id]
        ack = Ack(envelope_id, reply.get("payload"), loop.time() - sent_at)
        self.acks.append(ack)
        return ack

    async def disconnect_clients(self, reason: str = "refresh_requested") -> None:
        """Ask every live client to reconnect, as Slack does when it refreshes a connection."""
        retiring, self._live = self._live, []
        debug_info = {"host": "fake-slack"}
        for ws in retiring:
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": debug_info})

    async def wait_handshakes(self, n: int) -> None:
        """Wait until ``n`` WebSocket upgrades were attempted in total, refused ones included."""
        await self._wait_for(lambda: len(self.handshakes) >= n, f"expected {n} handshake(s)")

    @property
    def live(self) -> int:
        """Return how many connections are open and not told to go."""
        return len(self._live)

    async def wait_calls(self, method: str, n: int) -> None:
        """Wait until `method` has been called `n` times in total."""
        await self._wait_for(
            lambda: [call.method for call in self.calls].count(method) >= n,
            f"expected {n} call(s) of {method}",
        )

    async def drop_connections(self) -> None:
        """Close every live connection from the server side, as a network outage does."""
        retiring, self._live = self._live, []
        for ws in retiring:
            await ws.close()

    async def _wait_for(self, predicate: Callable[[], bool], expectation: str) -> None:
        try:
            async with asyncio.timeout(self.timeout), self._changed:
                await self._changed.wait_for(predicate)
        except TimeoutError:
            raise TimeoutError(
                f"FakeSlack: {expectation} within {self.timeout} s, but saw "
                f"{self.connections} connection(s), {len(self._live)} live; is a "
                f"SocketModeClient connected to {self.base_url}?"
            ) from None

    # Realistic payloads for send_envelope

    def app_mention(
        self,
        text: str,
        *,
        user: str = "U0ALICE",
        channel: str | None = None,
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        """Build an events_api payload for "<@UBOT> text" said in a channel."""
        channel, text = channel or next(iter(self.channels)), f"<@{BOT_USER_ID}> {text}"
        return self._event_callback(
            type="app_mention", text=text, user=user, channel=channel, thread_ts=thread_ts
        )

    def direct_message(
        self, text: str, *, user: str = "U0ALICE", channel: str = "D0ALICE"
    ) -> dict[str, Any]:
        """Build an events_api payload for a direct message to the bot."""
        return self._event_callback(
            type="message", text=text, user=user, channel=channel, channel_type="im"
        )

    def slash_command(
        self, command: str, text: str = "", *, user: str = "U0ALICE", channel: str | None = None
    ) -> dict[str, Any]:
        """Build a slash_commands payload (Slack sends the form fields as strings)."""
        channel = channel or next(iter(self.channels))
        return {
            "token": "fake-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": self.channels.get(channel, "directmessage"),
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"http://127.0.0.1:{self.port}/commands/{TEAM_ID}/{uuid.uuid4().hex}",
            "trigger_id": f"{self.next_ts()}.{uuid.uuid4().hex}",
        }

    def block_action(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U0ALICE",
        channel: str | None = None,
        message_ts: str = "1700000000.000100",
    ) -> dict[str, Any]:
        """Build a block_actions interaction payload: a button pressed in a bot's message."""
        channel = channel or next(iter(self.channels))
        return {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "fake"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "fake-verification-token",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": f"{self.next_ts()}.{uuid.uuid4().hex}",
            "channel": {"id": channel, "name": self.channels.get(channel, "directmessage")},
            "message": {"type": "message", "ts": message_ts, "user": BOT_USER_ID, "text": "?"},
            "response_url": f"http://127.0.0.1:{self.port}/actions/{uuid.uuid4().hex}",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b1",
                    "value": value,
                    "action_ts": self.next_ts(),
                    "text": {"type": "plain_text", "text": value},
                }
            ],
        }

    def _event_callback(self, **fields: Any) -> dict[str, Any]:
        ts = self.next_ts()
        event = {k: v for k, v in fields.items() if v is not None}
        event |= {"ts": ts, "event_ts": ts, "team": TEAM_ID, "client_msg_id": str(uuid.uuid4())}
        return {
            "token": "fake-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10]}",
            "event_time": int(float(ts)),
            "is_ext_shared_channel": False,
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }


def _gateway_error(status: int) -> web.Response:
    """Answer as a failing load balancer does: an HTML page, not Slack's JSON."""
    return web.Response(
        status=status, text=f"<html><h1>{status}</h1></html>", content_type="text/html"
    )


def _message(post: Post, *, metadata: bool) -> dict[str, Any]:
    """Render a message as Slack renders it: the bot's carry bot_id and app_id."""
    message = {
        "type": "message",
        "text": post.text or "",
        "user": post.user,
        "team": TEAM_ID,
        "ts": post.ts,
    }
    if post.user == BOT_USER_ID:
        message |= {"bot_id": BOT_ID, "app_id": APP_ID}
    optional = {
        "thread_ts": post.thread_ts,
        "blocks": post.blocks,
        "metadata": post.metadata if metadata else None,
    }
    return message | {k: v for k, v in optional.items() if v is not None}


def _within(ts: float, oldest: float, latest: float, inclusive: bool) -> bool:
    """Return whether ``ts`` is inside the window; its bounds count only with ``inclusive``."""
    return oldest <= ts <= latest if inclusive else oldest < ts < latest


def _cursor_offset(cursor: object) -> int:
    """Read an opaque cursor this fake issued; anything else is Slack's invalid_cursor."""
    if not cursor:
        return 0
    try:
        kind, _, offset = base64.b64decode(str(cursor), validate=True).decode().partition(":")
        if kind == "offset" and offset.isdigit():
            return int(offset)
    except ValueError:
        pass
    raise _Refused("invalid_cursor")


def signed_headers(
    secret: str,
    body: bytes,
    timestamp: int,
    content_type: str = "application/json",
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
) -> dict[str, str]:
    """Return the headers Slack sends with a request: v0 signature, timestamp, retry headers."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
    if retry_num is not None:
        headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
    return headers


def _flag(value: object) -> bool | None:
    """Read a boolean argument sent as JSON (true) or as a form/query string ("1", "true")."""
    return value if value is None or isinstance(value, bool) else str(value) in ("1", "true")


def _decoded(value: object) -> Any:
    """Decode a structured argument that a form-encoded request carries as a JSON string."""
    return json.loads(value) if isinstance(value, str) else value
