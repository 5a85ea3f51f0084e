"""Slack's Events API over HTTP: signed POSTs from Slack become the same events as Socket Mode.

Rules kept here:
- Each request is verified before its body is read as anything: ``X-Slack-Request-Timestamp``
  within 5 minutes of now and ``X-Slack-Signature`` equal, compared in constant time, to
  ``v0=`` + hex HMAC-SHA256 of ``v0:<timestamp>:<raw body>`` keyed by ``slack.signing_secret``.
  Anything else is 401 and publishes nothing. These routes are authenticated by that signature,
  not by ``http.token``: Slack sends no bearer token.
- ``POST /slack/events``: ``url_verification`` is answered with its challenge; an
  ``event_callback`` is stored as ``USER_REQUEST`` (the data Socket Mode gives) once per
  ``event_id``: the journal keys it ``slack:<event_id>`` for ``journal.retention``, so Slack's
  retries (``X-Slack-Retry-Num``, for minutes) store nothing new, across a restart too.
- ``POST /slack/commands``: a slash command, published as ``USER_REQUEST`` at the channel's top
  level. ``POST /slack/interactivity``: the form's ``payload``, published as
  ``SLACK_INTERACTION``.
- The answer goes out once the event is committed to the journal, before any handler runs, well
  within Slack's 3 s. A store that cannot take it answers 503 (Slack retries); a payload lacking
  its channel or ts is logged, counted and answered 200, so Slack does not retry it.
"""

import hashlib
import hmac
import json
import urllib.parse
from collections import Counter
from typing import Any

import structlog
from aiohttp import web

from common.clock import Clock
from common.errors import BusClosedError, RequestRejected, StoreError
from common.events import SLACK_INTERACTION, USER_REQUEST
from supervisor.slack.payloads import MalformedPayload, clean, interaction, user_request

log = structlog.get_logger("intentd.slack")

MAX_SKEW = 300  # seconds a request's timestamp may be from now (Slack's replay window)
MAX_BODY = 1024 * 1024
JSON, FORM = "application/json", "application/x-www-form-urlencoded"


class SlackEventsApi:
    """The ``/slack/*`` routes: verify Slack's signature, answer fast, publish once."""

    def __init__(
        self,
        signing_secret: str,
        events: Any,
        clock: Clock,
        *,
        bot_user_id: str | None = None,
        malformed: Counter[str] | None = None,
    ) -> None:
        self._secret = signing_secret.encode()
        self.events = events  # the EventIntake: ``await events.accept(...)`` stores an event
        self.clock = clock
        self.bot_user_id = bot_user_id
        self.malformed: Counter[str] = Counter() if malformed is None else malformed
        self.received = 0

    def routes(self) -> list[web.RouteDef]:
        """Return the routes to serve; each checks Slack's signature itself."""
        return [
            web.post("/slack/events", self._events),
            web.post("/slack/commands", self._commands),
            web.post("/slack/interactivity", self._interactivity),
        ]

    async def _events(self, request: web.Request) -> web.StreamResponse:
        body = await self._verified_body(request, JSON)
        try:
            envelope = clean(json.loads(body.decode("utf-8")))
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            return self._bad("not_an_object", None, request)
        if envelope.get("type") == "url_verification":
            return web.json_response({"challenge": envelope.get("challenge")})
        if envelope.get("type") == "app_rate_limited":  # Slack drops our events for a minute
            log.warning("slack_app_rate_limited", minute=envelope.get("minute_rate_limited"))
            return web.Response(status=200)
        event_id = envelope.get("event_id")
        if envelope.get("type") != "event_callback" or not isinstance(event_id, str):
            return self._bad("not_an_event", None, request)
        try:
            data = user_request("events_api", envelope, self.bot_user_id)
        except MalformedPayload as err:
            return self._bad(str(err), event_id, request)
        if data is not None:
            await self._store(USER_REQUEST, data, request, event_id)
        return web.Response(status=200)

    async def _commands(self, request: web.Request) -> web.StreamResponse:
        form = _form(await self._verified_body(request, FORM))
        try:
            data = user_request("slash_commands", form, self.bot_user_id)
        except MalformedPayload as err:
            return self._bad(str(err), None, request)
        assert data is not None  # a slash command is always for us
        await self._store(USER_REQUEST, data, request)
        return web.Response(status=200)

    async def _interactivity(self, request: web.Request) -> web.StreamResponse:
        form = _form(await self._verified_body(request, FORM))
        try:
            payload = clean(json.loads(form.get("payload", "")))
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return self._bad("no_payload", None, request)
        try:
            data = interaction(payload)
        except MalformedPayload as err:
            return self._bad(str(err), None, request)
        await self._store(SLACK_INTERACTION, data, request)
        return web.Response(status=200)

    async def _verified_body(self, request: web.Request, content_type: str) -> bytes:
        """Return the raw body once Slack's signature and timestamp check out; raise otherwise."""
        body = await _read_body(request)
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not stamp.isdigit() or abs(self.clock.time() - int(stamp)) > MAX_SKEW:
            raise RequestRejected(
                401,
                f"X-Slack-Request-Timestamp {stamp[:20]!r} is missing or more than "
                f"{MAX_SKEW} s from now; Slack signs each request when it sends it",
            )
        digest = hmac.new(self._secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
        given = request.headers.get("X-Slack-Signature", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(b"v0=" + digest.hexdigest().encode(), given):
            raise RequestRejected(
                401,
                "X-Slack-Signature does not match the request; check that "
                "slack.signing_secret (SLACK_SIGNING_SECRET) is the app's signing secret",
            )
        if request.content_type != content_type:
            raise RequestRejected(
                415,
                f"Content-Type {request.content_type!r} is not what Slack sends to "
                f"{request.path} ({content_type!r})",
            )
        return body

    async def _store(
        self,
        event_type: str,
        data: dict[str, Any],
        request: web.Request,
        event_id: str | None = None,
    ) -> None:
        key = f"slack:{event_id}" if event_id is not None else None
        try:
            stored = await self.events.accept("slack", event_type, data, source="slack", key=key)
        except (BusClosedError, StoreError) as err:
            raise RequestRejected(503, f"{err}; Slack retries this request later") from err
        if stored.duplicate:
            log.info(
                "slack_event_repeated",
                event_id=event_id,
                retry_num=request.headers.get("X-Slack-Retry-Num"),
                retry_reason=request.headers.get("X-Slack-Retry-Reason"),
            )
        else:
            self.received += 1

    def _bad(self, reason: str, event_id: str | None, request: web.Request) -> web.Response:
        self.malformed[f"http_{reason}"] += 1
        log.warning("slack_frame_malformed", reason=reason, route=request.path, event_id=event_id)
        return web.Response(status=200)  # verified and from Slack: a retry would not help


async def _read_body(request: web.Request) -> bytes:
    """Read the raw body (the signature covers its exact bytes), up to MAX_BODY."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RequestRejected(413, f"request body is over the {MAX_BODY}-byte limit")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise RequestRejected(413, f"request body is over the {MAX_BODY}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _form(body: bytes) -> dict[str, Any]:
    """Decode a form body as Slack sends it: one value per field."""
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return clean({name: values[0] for name, values in fields.items()})
