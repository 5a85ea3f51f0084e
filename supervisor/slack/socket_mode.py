"""Slack in: Socket Mode envelopes become USER_REQUEST events, on the daemon's loop.

Rules kept here:
- An envelope is acknowledged once its event is committed to the event journal (Slack does not
  send an acked envelope again), well within Slack's 3 s: the journal's group commit takes
  a loop turn, however busy the handlers are. An envelope that cannot be stored is not acked, so
  Slack sends it again; one that is not for us is acked at once.
- App mentions, direct messages and slash commands become ``USER_REQUEST`` with ``channel_id``
  ``slack:<channel>/<thread_ts>`` (a slash command has no thread: ``slack:<channel>``), ``user_id``
  and ``text``; the daemon's own messages, bots and edits are ignored, and an event Slack
  re-sends (same ``event_id``, the journal key ``slack:<event_id>``) is stored once.
- A connection that closes, fails or goes stale is re-opened by ``run()`` itself (slack-sdk's own
  auto reconnect, which retries at a fixed interval, is off): the first attempt waits
  ``reconnect_interval``, each failed one doubles the wait up to ``reconnect_max``, with jitter,
  and a connection that opens resets it. Time comes from the injected clock. Slack's planned
  ``disconnect`` refresh is still followed by the SDK at once, and the SDK retries a WebSocket
  handshake that fails right after ``apps.connections.open`` succeeded every ``reconnect_interval``.
  ``connected`` says whether a live connection has been greeted, for ``/readyz``.
- The client starts its own tasks and aiohttp session (for the WebSocket) on this loop; ``run()``
  closes it on the way out. The app token is checked once at start: a refused token is a
  SlackAuthError, not a reconnect loop.
"""

import asyncio
import contextlib
import random as random_module
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from common.backoff import backoff_delay
from common.clock import Clock, SystemClock
from common.errors import BusClosedError, SlackAuthError, StoreError
from common.events import USER_REQUEST

log = structlog.get_logger("intentd.slack")

# Slack's answers that mean "this token will never work", for the bot and the app token alike.
REFUSED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type"}
)

_LEADING_MENTION = re.compile(r"^\s*<@[A-Z0-9]+>\s*")


def user_request(
    kind: str, payload: dict[str, Any], bot_user_id: str | None
) -> dict[str, Any] | None:
    """Return USER_REQUEST data for a Socket Mode payload, or None if it is not for us."""
    if kind == "slash_commands":
        return {
            "channel_id": f"slack:{payload.get('channel_id')}",
            "user_id": payload.get("user_id"),
            "text": payload.get("text") or "",
            "command": payload.get("command"),
            "source": "slack",
        }
    if kind != "events_api":
        return None
    event = payload.get("event") or {}
    if event.get("bot_id") or event.get("subtype") or event.get("user") in (None, bot_user_id):
        return None
    mention = event.get("type") == "app_mention"
    direct = event.get("type") == "message" and event.get("channel_type") == "im"
    if not (mention or direct):
        return None
    thread_ts = event.get("thread_ts") or event.get("ts")
    return {
        "channel_id": f"slack:{event.get('channel')}/{thread_ts}",
        "user_id": event.get("user"),
        "text": _LEADING_MENTION.sub("", event.get("text") or "", count=1),
        "source": "slack",
    }


class SlackIn:
    """Receive Slack messages over Socket Mode and publish them as USER_REQUEST events."""

    def __init__(
        self,
        app_token: str,
        web_client: AsyncWebClient,
        events: Any,
        *,
        bot_user_id: str | None = None,
        reconnect_interval: float = 5.0,
        reconnect_max: float = 300.0,
        clock: Clock | None = None,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        self.app_token = app_token
        self.web_client = web_client
        self.events = events  # the EventIntake: ``await events.accept(...)`` stores an event
        self.bot_user_id = bot_user_id
        self.reconnect_interval = reconnect_interval
        self.reconnect_max = reconnect_max
        self.clock = clock or SystemClock()
        self.random = random
        self.received = 0
        self.retry_at: float | None = None  # when the next connection attempt is due, if waiting
        self._client: SocketModeClient | None = None
        self._greeted = False
        self._lost = asyncio.Event()

    @property
    def connected(self) -> bool:
        """Return True while a Socket Mode connection is open and greeted by Slack."""
        session = self._client.current_session if self._client is not None else None
        return self._greeted and session is not None and not session.closed

    async def check_token(self) -> None:
        """Raise SlackAuthError if Slack refuses the app token; only log if Slack is away."""
        try:
            await self.web_client.apps_connections_open(app_token=self.app_token)
        except SlackApiError as err:
            error = err.response.get("error") if isinstance(err.response.data, dict) else None
            if error in REFUSED_TOKEN_ERRORS:
                raise SlackAuthError(
                    f"slack.app_token was refused by Slack ({error}); set SLACK_APP_TOKEN to the "
                    "app-level token (xapp-...) with the connections:write scope"
                ) from err
            log.warning("slack_unreachable_at_start", error=str(err))
            return
        except (OSError, TimeoutError) as err:
            log.warning("slack_unreachable_at_start", error=repr(err))

    async def run(self) -> None:
        """Stay connected until cancelled, reconnecting with backoff; the supervisor owns this."""
        client = SocketModeClient(
            self.app_token,
            web_client=self.web_client,
            auto_reconnect_enabled=False,
            ping_interval=self.reconnect_interval,
        )
        client.socket_mode_request_listeners.append(self._on_request)
        client.message_listeners.append(self._on_message)
        client.on_close_listeners.append(self._on_lost)
        client.on_error_listeners.append(self._on_lost)
        self._client = client
        failures = 0
        try:
            while True:
                self.retry_at = None
                if await self._connect(client):
                    failures = 0
                    await self._until_lost(client)
                else:
                    failures += 1
                delay = backoff_delay(
                    failures + 1, self.reconnect_interval, self.reconnect_max, self.random
                )
                self.retry_at = self.clock.time() + delay
                log.info("slack_reconnect_scheduled", failures=failures, delay_s=round(delay, 3))
                await self.clock.sleep_until(self.retry_at)
        finally:
            self._greeted = False
            self.retry_at = None
            await client.close()

    async def _connect(self, client: SocketModeClient) -> bool:
        """Open a connection unless one is open; return whether one is open now."""
        try:
            await client.connect_to_new_endpoint()
        except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as err:
            log.warning("slack_connect_failed", error=str(err) or repr(err))
            return False
        return await client.is_connected()

    async def _until_lost(self, client: SocketModeClient) -> None:
        """Return once the connection is closed, failed, or found stale by the SDK's pings."""
        while await client.is_connected():
            # A close or an error is told at once; staleness only shows on the next check.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.reconnect_interval):
                    await self._lost.wait()
            self._lost.clear()
        self._greeted = False
        log.warning("slack_connection_lost")

    async def _on_lost(self, message: aiohttp.WSMessage) -> None:
        self._lost.set()

    async def _on_message(
        self, client: AsyncBaseSocketModeClient, message: dict[str, Any], raw: str | None
    ) -> None:
        # slack-sdk handles "disconnect" itself (it reconnects at once) and never passes it here.
        if message.get("type") == "hello":
            self._greeted = True
            log.info("slack_connected")

    async def _on_request(
        self, client: AsyncBaseSocketModeClient, request: SocketModeRequest
    ) -> None:
        data = user_request(request.type, request.payload, self.bot_user_id)
        if data is not None:
            slack_id = request.payload.get("event_id") or request.envelope_id
            try:
                stored = await self.events.accept(
                    "slack", USER_REQUEST, data, source="slack", key=f"slack:{slack_id}"
                )
            except (BusClosedError, StoreError) as err:
                log.warning(
                    "user_request_not_stored", channel_id=data["channel_id"], error=str(err)
                )
                return  # not acked: Slack sends the envelope again
            if stored.duplicate:
                log.info("slack_event_repeated", event_id=slack_id)
            else:
                self.received += 1
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
