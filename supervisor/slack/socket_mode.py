"""Slack in: Socket Mode envelopes become USER_REQUEST events, on the daemon's loop.

Rules kept here:
- An envelope is acknowledged once its event is committed to the event journal (Slack does not
  send an acked envelope again), well within Slack's 3 s: the journal's group commit takes a loop
  turn, however busy the handlers are. One that cannot be stored is not acked, so Slack sends it
  again; one that carries no event for us, whatever its body, is acked at once. Payloads become
  event data as ``supervisor.slack.payloads`` says; an event Slack re-sends (same ``event_id``,
  the journal key ``slack:<event_id>``) is stored once, and a payload lacking its channel or ts
  is logged and counted, never answered.
- ``run()`` keeps one connection open and re-opens it itself: each attempt asks
  ``apps.connections.open`` for a fresh URL (Slack's URLs are good for one connection), so a
  refused handshake is retried with a new URL too. The first attempt after a loss waits
  ``reconnect_interval``, each failed one doubles the wait up to ``reconnect_max``, with
  jitter, and a connection greeted by its own hello starts the count over. Slack's planned
  ``disconnect`` (``refresh_requested``, ``warning``) is followed at once. Time comes from the
  injected clock. ``connected`` says whether a greeted connection is open, for ``/readyz``.
- The WebSocket uses the web client's aiohttp session; ``run()`` owns every task it starts. The
  app token is checked once at start: a refused token is a SlackAuthError, not a reconnect
  loop. Neither the token nor a connection URL is ever logged.
"""

import random as random_module
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from common.backoff import backoff_delay
from common.clock import Clock, SystemClock
from common.errors import BusClosedError, SlackAuthError, StoreError
from common.events import SLACK_INTERACTION, USER_REQUEST
from supervisor.slack.payloads import MalformedPayload, interaction, user_request
from supervisor.slack.socket_connection import CLOSE_TIMEOUT, Ending, SocketModeConnection

log = structlog.get_logger("intentd.slack")

# Slack's answers that mean "this token will never work", for the bot and the app token alike.
REFUSED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type"}
)
REMEMBERED_EVENTS = 1000  # event ids kept to drop Slack's re-deliveries


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
        malformed: Counter[str] | None = None,
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
        self.malformed: Counter[str] = Counter() if malformed is None else malformed
        self._connection: SocketModeConnection | None = None

    @property
    def connected(self) -> bool:
        """Return True while a Socket Mode connection is open and greeted by Slack."""
        return self._connection is not None and self._connection.open

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
            log.warning("slack_unreachable_at_start", status=err.response.status_code, error=error)
            return
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            log.warning("slack_unreachable_at_start", error=type(err).__name__)

    async def run(self) -> None:
        """Stay connected until cancelled, reconnecting with backoff; the supervisor owns this."""
        failures = 0
        try:
            while True:
                self.retry_at = None
                ending = await self._connect_once()
                if ending.planned:
                    continue
                failures = 0 if ending.greeted else failures + 1
                delay = backoff_delay(
                    failures + 1, self.reconnect_interval, self.reconnect_max, self.random
                )
                self.retry_at = self.clock.time() + delay
                log.info("slack_reconnect_scheduled", failures=failures, delay_s=round(delay, 3))
                await self.clock.sleep_until(self.retry_at)
        finally:
            self.retry_at = None

    async def _connect_once(self) -> Ending:
        """Open one connection with a fresh URL and serve it until it ends."""
        try:
            url = (await self.web_client.apps_connections_open(app_token=self.app_token))["url"]
        except SlackApiError as err:
            error = err.response.get("error") if isinstance(err.response.data, dict) else None
            log.warning(
                "slack_connect_failed",
                step="apps.connections.open",
                status=err.response.status_code,
                error=error,
            )
            return Ending(greeted=False)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            log.warning(
                "slack_connect_failed", step="apps.connections.open", error=type(err).__name__
            )
            return Ending(greeted=False)
        session = self.web_client.session
        assert session is not None, "SlackIn needs a web client built with session="
        try:
            ws = await session.ws_connect(
                url, autoping=False, timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT)
            )
        except aiohttp.WSServerHandshakeError as err:  # str(err) would carry the URL
            log.warning("slack_connect_failed", step="handshake", status=err.status)
            return Ending(greeted=False)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            log.warning("slack_connect_failed", step="handshake", error=type(err).__name__)
            return Ending(greeted=False)
        connection = SocketModeConnection(
            ws,
            self._on_request,
            clock=self.clock,
            ping_interval=self.reconnect_interval,
            malformed=self.malformed,
        )
        self._connection = connection
        try:
            ending = await connection.serve()
        finally:
            self._connection = None
            await connection.close()
        if not ending.planned:
            log.warning("slack_connection_lost", greeted=ending.greeted, reason=ending.disconnect)
        return ending

    async def _on_request(self, client: SocketModeConnection, request: SocketModeRequest) -> None:
        event_type, data = self._event_for(request)
        if data is not None:
            slack_id = request.payload.get("event_id") or request.envelope_id
            try:
                stored = await self.events.accept(
                    "slack", event_type, data, source="slack", key=f"slack:{slack_id}"
                )
            except (BusClosedError, StoreError) as err:
                log.warning("slack_event_not_stored", event_type=event_type, error=str(err))
                return  # not acked: Slack sends the envelope again
            if stored.duplicate:
                log.info("slack_event_repeated", event_id=slack_id)
            else:
                self.received += 1
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    def _event_for(self, request: SocketModeRequest) -> tuple[str, dict[str, Any] | None]:
        """Return the event an envelope becomes; a malformed payload is logged and counted."""
        try:
            if request.type == "interactive":
                return SLACK_INTERACTION, interaction(request.payload)
            return USER_REQUEST, user_request(request.type, request.payload, self.bot_user_id)
        except MalformedPayload as err:
            self.malformed[f"socket_{err}"] += 1
            log.warning(
                "slack_frame_malformed",
                reason=str(err),
                type=request.type,
                envelope_id=request.envelope_id,
            )
            return USER_REQUEST, None
