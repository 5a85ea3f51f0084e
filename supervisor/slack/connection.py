"""The Slack connection: one aiohttp session shared by Slack out and Slack in, checked at start.

A token Slack refuses stops the start with a SlackAuthError naming the setting to fix; Slack being
unreachable (refused, timed out, or the connection closed before an answer) does not: the daemon
starts, the outbox keeps notifications until Slack is back, and Socket Mode keeps reconnecting,
with backoff. Messages come in as ``slack.mode`` says: Socket Mode (``SlackIn``), the Events API
over HTTP (``SlackEventsApi``, served on the daemon's HTTP API), or not at all (``none``).
"""

from collections import Counter
from collections.abc import Iterator

import aiohttp
import structlog
from aiohttp import web
from prometheus_client.core import Metric
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from common.clock import Clock, SystemClock
from common.errors import SlackAuthError
from supervisor.config import SlackConfig
from supervisor.ops.metrics import counter
from supervisor.slack.events_api import SlackEventsApi
from supervisor.slack.socket_mode import REFUSED_TOKEN_ERRORS, SlackIn
from supervisor.slack.web_api import SlackOut

log = structlog.get_logger("intentd.slack")


class SlackConnection:
    """Own the shared session and Slack in and out; ``open`` on the loop, then ``close``."""

    def __init__(self, config: SlackConfig, events: object, clock: Clock | None = None) -> None:
        self.config = config
        self.events = events  # the EventIntake, where Slack's events are stored
        self.clock = clock or SystemClock()
        self.session: aiohttp.ClientSession | None = None
        self.out: SlackOut | None = None
        self.inbound: SlackIn | None = None
        self.events_api: SlackEventsApi | None = None
        self.bot_user_id: str | None = None
        self.malformed: Counter[str] = Counter()  # by source and reason, for /metrics

    async def open(self) -> None:
        """Build the clients on the running loop and check the tokens with Slack."""
        cfg = self.config
        # slack-sdk ignores its own ``timeout`` when given a session, so the session holds it.
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=cfg.request_timeout)
        )
        client = AsyncWebClient(
            token=cfg.bot_token,
            base_url=cfg.base_url,
            session=self.session,
            retry_handlers=[],  # the outbox retries; the SDK's retry would post a message twice
        )
        self.out = SlackOut(client, cfg.default_channel)
        try:
            self.bot_user_id = (await client.auth_test())["user_id"]
        except SlackApiError as err:
            error = err.response.get("error") if isinstance(err.response.data, dict) else None
            if error in REFUSED_TOKEN_ERRORS:
                raise SlackAuthError(
                    f"slack.bot_token was refused by Slack at {cfg.base_url!r} ({error}); set "
                    "SLACK_BOT_TOKEN to the app's bot token (xoxb-...)"
                ) from err
            log.warning("slack_unreachable_at_start", status=err.response.status_code, error=error)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            log.warning("slack_unreachable_at_start", error=type(err).__name__)
        if cfg.mode == "socket" and cfg.app_token:
            socket_client = AsyncWebClient(
                base_url=cfg.base_url, session=self.session, retry_handlers=[]
            )
            self.inbound = SlackIn(
                cfg.app_token,
                socket_client,
                self.events,
                bot_user_id=self.bot_user_id,
                reconnect_interval=cfg.reconnect_interval,
                reconnect_max=cfg.reconnect_max,
                clock=self.clock,
                malformed=self.malformed,
            )
            await self.inbound.check_token()

    def http_routes(self) -> list[web.RouteDef]:
        """Return the Events API routes (none unless slack.mode is http)."""
        cfg = self.config
        if cfg.mode != "http" or not cfg.signing_secret:
            return []
        self.events_api = SlackEventsApi(
            cfg.signing_secret,
            self.events,
            self.clock,
            bot_user_id=self.bot_user_id,
            malformed=self.malformed,
        )
        return self.events_api.routes()

    def metric_families(self) -> Iterator[Metric]:
        """Yield the count of malformed Slack frames and payloads by source and reason."""
        yield counter(
            "intentd_slack_malformed",
            "Malformed Slack frames and payloads, by reason.",
            ("reason",),
            self.malformed,
        )

    def not_ready(self) -> str | None:
        """Return why Slack messages cannot reach the daemon now, or None (for ``/readyz``)."""
        if self.inbound is not None and not self.inbound.connected:
            return (
                "the Slack Socket Mode connection is down; it reconnects with backoff, waiting "
                f"{self.config.reconnect_interval:g} s doubling up to "
                f"{self.config.reconnect_max:g} s between attempts"
            )
        return None

    async def close(self) -> None:
        """Close the shared session."""
        if self.session is not None:
            await self.session.close()
