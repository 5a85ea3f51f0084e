"""Slack out: post one part of a notification with AsyncWebClient, idempotently.

Rules kept here:
- The client is built with ``retry_handlers=[]``: the SDK's connection-error retry re-sends a
  chat.postMessage whose answer was lost, so it lands twice. The outbox retries instead.
- Every post carries message metadata with the part's idempotency key. When the outcome of an
  earlier request is unknown, the channel (or thread) is read first and a message with that key
  counts as posted. The read is bounded by time (``oldest`` = ``CLOCK_MARGIN`` s before the
  entry was stored) and follows Slack's cursors to the end, so a long or busy thread cannot hide
  the post. Apps outside the Slack Marketplace may call ``conversations.history`` and
  ``.replies`` once a minute with at most 15 messages a page: their 429s are retried after
  Retry-After like any other, and the time bound keeps the pages few.
- Errors are classified for the outbox: permanent (``channel_not_found``, ``invalid_auth``...),
  transient (5xx, ``ratelimited`` with its Retry-After, fractional values included), or unknown
  (the connection dropped after the request was sent).
- Text is split at Slack's limit, on a line or word boundary, keeping code fences balanced;
  ``mrkdwn`` is left on, so formatting reaches Slack as written.
"""

from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from common.errors import DeliveryError

log = structlog.get_logger("intentd.slack")

MAX_TEXT_CHARS = 40_000  # chat.postMessage answers msg_too_long above this
METADATA_EVENT = "intentd_notification"
FENCE = "```"
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
PAGE_SIZE = 200  # messages per page of a duplicate check (Slack may clamp it to 15)
CLOCK_MARGIN = 60.0  # seconds our clock may be ahead of Slack's when bounding that check


def split_message(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters, keeping code fences closed."""
    parts: list[str] = []
    rest = text
    reserve = len(FENCE) + 1  # room to close a fence the cut falls inside
    while len(rest) > limit:
        window = rest[: limit - reserve]
        cut = max(window.rfind("\n"), window.rfind(" "))
        if cut <= 0:
            cut = len(window)
        part, rest = rest[:cut], rest[cut:].lstrip("\n ")
        if part.count(FENCE) % 2:
            part, rest = f"{part}\n{FENCE}", f"{FENCE}\n{rest}"
        parts.append(part)
    parts.append(rest)
    return parts


class SlackOut:
    """Post notifications to Slack; the outbox's durable channel of kind ``slack``."""

    durable = True

    def __init__(self, client: AsyncWebClient, default_channel: str | None = None) -> None:
        self.client = client
        self.default_channel = default_channel
        self._channel_ids: dict[str, str] = {}

    def split(self, text: str) -> list[str]:
        """Return ``text`` as the parts to post."""
        return split_message(text)

    async def post(self, target: str, text: str, key: str, *, check_since: float | None) -> str:
        """Post ``text`` to ``target`` (``C0123``, ``#ops``, ``C0123/thread_ts``); return its ts."""
        channel, _, thread_ts = (target or self.default_channel or "").partition("/")
        if not channel:
            raise DeliveryError(
                "the notification names no Slack channel and slack.default_channel is not set; "
                "address it as slack:C0123 or set slack.default_channel",
                permanent=True,
            )
        if check_since is not None:
            posted = await self._already_posted(channel, thread_ts or None, key, check_since)
            if posted is not None:
                log.info("notification_already_posted", channel=channel, key=key, ts=posted)
                return posted
        metadata = {"event_type": METADATA_EVENT, "event_payload": {"key": key}}
        response = await self._call(
            "chat.postMessage",
            channel=channel,
            text=text,
            thread_ts=thread_ts or None,
            mrkdwn=True,
            metadata=metadata,
        )
        self._channel_ids[channel] = response["channel"]
        return str(response["ts"])

    async def _already_posted(
        self, channel: str, thread_ts: str | None, key: str, since: float
    ) -> str | None:
        """Return the ts of the message posted under ``key`` after ``since``, or None."""
        channel_id = await self._channel_id(channel)
        method, where = (
            ("conversations.replies", {"ts": thread_ts})
            if thread_ts
            else ("conversations.history", {})
        )
        oldest, cursor = f"{max(0.0, since - CLOCK_MARGIN):.6f}", None
        while True:
            response = await self._call(
                method,
                channel=channel_id,
                oldest=oldest,
                cursor=cursor,
                include_all_metadata=True,
                limit=PAGE_SIZE,
                **where,
            )
            for message in response.get("messages", []):
                metadata = message.get("metadata") or {}
                if (
                    metadata.get("event_type") == METADATA_EVENT
                    and (metadata.get("event_payload") or {}).get("key") == key
                ):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None

    async def _channel_id(self, channel: str) -> str:
        """Return the id of ``channel`` (an id already, or a name such as ``#ops``)."""
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        if channel[:1] in ("C", "D", "G") and channel.upper() == channel:
            return channel
        name, cursor = channel.lstrip("#"), None
        if name in self._channel_ids:
            return self._channel_ids[name]
        while True:
            page = await self._call(
                "conversations.list",
                cursor=cursor,
                limit=1000,
                exclude_archived=True,
                types="public_channel,private_channel",
            )
            for found in page.get("channels", []):
                self._channel_ids[found["name"]] = found["id"]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if name in self._channel_ids or not cursor:
                break
        if name not in self._channel_ids:
            raise DeliveryError(
                f"Slack has no channel named {channel!r} (channel_not_found)", permanent=True
            )
        return self._channel_ids[name]

    async def _call(self, method: str, **args: Any) -> Any:
        """Call a Web API method and turn every failure into a classified DeliveryError."""
        args = {k: v for k, v in args.items() if v is not None}
        try:
            return await getattr(self.client, method.replace(".", "_"))(**args)
        except SlackApiError as err:
            raise classify(method, err) from err
        except aiohttp.ClientConnectorError as err:  # never reached Slack: nothing was sent
            raise DeliveryError(f"{method}: cannot connect to Slack ({err})") from err
        except TimeoutError as err:
            raise DeliveryError(
                f"{method}: Slack did not answer within slack.request_timeout (timed out)",
                unknown=True,
            ) from err
        except aiohttp.ClientError as err:
            raise DeliveryError(
                f"{method}: the connection failed before Slack answered ({type(err).__name__})",
                unknown=True,
            ) from err


def classify(method: str, err: SlackApiError) -> DeliveryError:
    """Turn a Slack error answer into a permanent or transient DeliveryError."""
    response = err.response
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    error = data.get("error")
    if status == 429 or error == "ratelimited":
        retry_after = _retry_after(response.headers)
        return DeliveryError(
            f"{method}: ratelimited, retry after {retry_after} s", retry_after=retry_after
        )
    if error is None or status >= 500 or error in TRANSIENT_ERRORS:
        return DeliveryError(f"{method}: Slack answered HTTP {status} ({error or 'no error code'})")
    return DeliveryError(f"{method}: Slack refused the request ({error})", permanent=True)


def _retry_after(headers: Any) -> float:
    """Read Retry-After in seconds, fractional values included (1 s if missing or unreadable)."""
    value = next((v for k, v in dict(headers or {}).items() if k.lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0
