"""Slack in: Socket Mode envelopes become USER_REQUEST events, on the daemon's loop.

Rules kept here:
- Every envelope is acknowledged first, before anything else is done with it, so the ack leaves
  well within Slack's 3 s even when the bus is busy.
- App mentions, direct messages and slash commands become ``USER_REQUEST`` with ``channel_id``
  ``slack:<channel>/<thread_ts>`` (a slash command has no thread: ``slack:<channel>``), ``user_id``
  and ``text``; the daemon's own messages, bots and edits are ignored, and an event Slack
  re-sends (same ``event_id``) is published once.
- slack-sdk's SocketModeClient reconnects by itself when Slack sends ``disconnect`` or the socket
  drops, retrying every ``slack.reconnect_interval`` seconds while Slack is away; ``connected``
  says whether a live connection has been greeted, for ``/readyz``.
- The client starts its own tasks and aiohttp session (for the WebSocket) on this loop; ``run()``
  closes it on the way out. The app token is checked once at start: a refused token is a
  SlackAuthError, not a reconnect loop.
"""

import asyncio
import re
from collections import OrderedDict
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from common.errors import BusClosedError, BusFullError, SlackAuthError
from common.events import USER_REQUEST

log = structlog.get_logger("intentd.slack")

# Slack's answers that mean "this token will never work", for the bot and the app token alike.
REFUSED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type"}
)

_LEADING_MENTION = re.compile(r"^\s*<@[A-Z0-9]+>\s*")
REMEMBERED_EVENTS = 1000  # event ids kept to drop Slack's re-deliveries


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
        bus: Any,
        *,
        bot_user_id: str | None = None,
        reconnect_interval: float = 5.0,
    ) -> None:
        self.app_token = app_token
        self.web_client = web_client
        self.bus = bus
        self.bot_user_id = bot_user_id
        self.reconnect_interval = reconnect_interval
        self.received = 0
        self._client: SocketModeClient | None = None
        self._greeted = False
        self._seen: OrderedDict[str, None] = OrderedDict()

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
        """Stay connected until cancelled; the supervisor owns this task."""
        client = SocketModeClient(
            self.app_token,
            web_client=self.web_client,
            ping_interval=self.reconnect_interval,
        )
        client.socket_mode_request_listeners.append(self._on_request)
        client.message_listeners.append(self._on_message)
        self._client = client
        try:
            await client.connect()
            await asyncio.Future()  # the SDK's own tasks receive and reconnect from here on
        finally:
            self._greeted = False
            await client.close()

    def _repeated(self, event_id: str | None) -> bool:
        if event_id is None:
            return False
        if event_id in self._seen:
            log.info("slack_event_repeated", event_id=event_id)
            return True
        self._seen[event_id] = None
        if len(self._seen) > REMEMBERED_EVENTS:
            self._seen.popitem(last=False)
        return False

    async def _on_message(self, client: AsyncBaseSocketModeClient, message: dict[str, Any],
                          raw: str | None) -> None:
        if message.get("type") == "hello":
            self._greeted = True
            log.info("slack_connected")
        elif message.get("type") == "disconnect":
            self._greeted = False
            log.info("slack_reconnecting", reason=message.get("reason"))

    async def _on_request(self, client: AsyncBaseSocketModeClient,
                          request: SocketModeRequest) -> None:
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        data = user_request(request.type, request.payload, self.bot_user_id)
        if data is None or self._repeated(request.payload.get("event_id")):
            return
        self.received += 1
        try:
            self.bus.publish("slack", USER_REQUEST, data, source="slack")
        except (BusClosedError, BusFullError) as err:
            log.warning("user_request_dropped", channel_id=data["channel_id"], error=str(err))
