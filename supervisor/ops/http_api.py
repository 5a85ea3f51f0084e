"""The HTTP API: health, readiness, metrics, status, events posted and role tools called.

Rules kept here:
- The server runs on the daemon's loop (aiohttp ``AppRunner`` + ``TCPSite``); no thread of its own.
- Every route but ``/healthz`` needs ``Authorization: Bearer <http.token>`` when a token is set,
  compared in constant time. The daemon refuses to listen on a non-loopback address without one.
  The ``signed_routes`` given (Slack's ``/slack/*``) check their sender's signature themselves
  and need no token.
- ``POST /events/{type}`` answers 202 only once the event is committed to the journal. A request
  with an ``Idempotency-Key`` the journal still holds (24 h) gets the first answer and stores
  nothing; a backlog at ``journal.max_backlog`` is 503 with ``Retry-After``.
- Hostile input gets a JSON ``{"error": "<one sentence>"}`` and changes nothing (bodies and query
  parameters: ops/http_input.py; requests aiohttp cannot parse: ops/http_server.py); a malformed
  event name is 422, an event type the daemon owns 403. Only a fully checked request publishes an
  event or runs a tool.
- A role tool runs as ``intentd call`` runs it (``find_tool`` + ``run_tool``): 200 with its reply
  when it and its intent succeeded, 422 with the reply when either failed, 404 for an unknown tool.
- Requests are counted by route and status, a client that hangs up before its answer by route;
  an answer of 400 or more is logged once as ``http_request_rejected`` (method, route, status,
  remote address). No body, header or query value is logged or quoted in an error.
"""

import dataclasses
import hmac
import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

import structlog
from aiohttp import web
from prometheus_client.core import Metric

from common.clock import utc_iso
from common.errors import (
    BusClosedError,
    ConfigError,
    EventNameError,
    EventOwnedError,
    JournalFullError,
    RequestRejected,
    StoreError,
    UnknownToolError,
)
from common.events import check_event_type, check_outside_event
from llm_provider.tool_runner import find_tool, run_tool
from supervisor.config import HTTPConfig
from supervisor.ops import json_rules
from supervisor.ops.http_input import MAX_BODY, query_int, read_json_object, too_large
from supervisor.ops.http_server import JsonErrorRunner
from supervisor.ops.metrics import CONTENT_TYPE, Metrics, counter
from supervisor.ops.readiness import Readiness
from supervisor.runtime import Runtime

log = structlog.get_logger("intentd.http")

MAX_KEY = 255  # characters in an Idempotency-Key
RETRY_AFTER = 1  # seconds a refused POST /events is told to wait: the journal drains fast
DEFAULT_AUDIT_LIMIT = 50
MAX_AUDIT_LIMIT = 1000
PUBLIC_PATHS = frozenset({"/healthz"})
_ACCEPTED_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
_REPLAYED_HEADERS = {**_ACCEPTED_HEADERS, "Idempotent-Replayed": "true"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpApi:
    """Serve the daemon's HTTP API on the daemon's loop; ``port`` is the bound port once started."""

    def __init__(
        self,
        config: HTTPConfig,
        runtime: Runtime,
        *,
        readiness: Readiness,
        metrics: Metrics,
        status: Callable[[], dict[str, Any]],
        signed_routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self.config = config
        if self.config.enabled:
            check_exposure(self.config.host, self.config.token)
        self._runtime = runtime
        self._readiness = readiness
        self._metrics_registry = metrics
        self._status_report = status
        self._token = self.config.token.encode() if self.config.token else None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.requests: Counter[tuple[str, int]] = Counter()
        self.hangups: Counter[str] = Counter()
        self._signed = list(signed_routes)
        self._open_paths = PUBLIC_PATHS | {route.path for route in self._signed}

    async def start(self) -> None:
        """Listen on ``http.host``:``http.port`` (port 0 picks a free one)."""
        if not self.config.enabled or self._runner is not None:
            return
        runner = JsonErrorRunner(self._app(), self._answered, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise ConfigError(
                f"http: cannot listen on {self.config.host!r} port {self.config.port} "
                f"({err.strerror}); stop the other process or change http.port"
            ) from err
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("http_listening", host=self.config.host, port=self.port, auth=bool(self._token))

    async def stop(self) -> None:
        """Stop accepting requests and close open connections."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def metric_families(self) -> Iterator[Metric]:
        """Yield the request counter by route and status."""
        yield counter(
            "intentd_http_requests",
            "HTTP requests by route and status.",
            ("route", "status"),
            self.requests,
        )
        yield counter(
            "intentd_http_client_hangups",
            "HTTP requests whose client hung up before the answer, by route.",
            ("route",),
            {(route,): n for route, n in self.hangups.items()},
        )

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_get("/roles", self._roles)
        app.router.add_get("/timers", self._timers)
        app.router.add_get("/audit", self._audit)
        app.router.add_post("/events/{event_type}", self._post_event)
        app.router.add_post("/roles/{role}/tools/{tool}", self._call_tool)
        app.router.add_routes(self._signed)
        return app

    # -- the guard every request passes -----------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "<unknown>"
        try:
            if request.path not in self._open_paths:
                self._authorize(request)
            response = await handler(request)
        except ConnectionError:  # the client hung up: nobody to answer, nothing went wrong here
            self.hangups[name] += 1
            log.info(
                "http_client_hung_up", method=request.method, route=name, remote=request.remote
            )
            return web.Response(status=400)  # never sent: aiohttp drops it with the connection
        except RequestRejected as err:
            response = _error(err.status, str(err))
        except web.HTTPException as err:
            response = _error(err.status, _describe_http_error(err, request))
        except Exception as err:
            log.error("http_route_failed", method=request.method, route=name, exc_info=err)
            response = _error(
                500,
                f"{request.method} {name} failed ({type(err).__name__}); "
                "the daemon log has the details",
            )
        self._answered(request.method, name, response.status, request.remote)
        return response

    def _answered(self, method: str, route: str, status: int, remote: str | None) -> None:
        self.requests[route, status] += 1
        if status >= 400:
            log.info(
                "http_request_rejected", method=method, route=route, status=status, remote=remote
            )

    def _authorize(self, request: web.Request) -> None:
        if self._token is None:
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise RequestRejected(
                401, "this route needs an 'Authorization: Bearer <token>' header with http.token"
            )
        if not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), self._token):
            raise RequestRejected(401, "the bearer token does not match http.token")

    # -- routes -----------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        report = self._readiness.report()
        reasons = {name: why for name, why in report.items() if why}
        checks = {name: why or "ok" for name, why in report.items()}
        if reasons:
            error = "not ready: " + "; ".join(f"{name}: {why}" for name, why in reasons.items())
            return web.json_response({"ready": False, "checks": checks, "error": error}, status=503)
        return web.json_response({"ready": True, "checks": checks})

    async def _refresh_journal(self) -> None:
        """Read the journal's figures; when the store cannot answer, the last ones read stand."""
        if self._runtime.intake is None:
            return
        try:
            await self._runtime.intake.refresh()
        except StoreError as err:
            log.warning("journal_figures_unavailable", error=str(err))

    async def _metrics(self, request: web.Request) -> web.Response:
        await self._refresh_journal()
        body = self._metrics_registry.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _status(self, request: web.Request) -> web.Response:
        await self._refresh_journal()
        return _json(self._status_report())

    async def _roles(self, request: web.Request) -> web.Response:
        loaded = sorted(self._runtime.registry.roles.values(), key=lambda role: role.name)
        roles = [role.summary() for role in loaded]
        return _json({"roles": roles})

    async def _timers(self, request: web.Request) -> web.Response:
        timers = await self._runtime.timers.list()
        return _json({"timers": [timer.to_dict() for timer in timers]})

    async def _audit(self, request: web.Request) -> web.Response:
        limit = query_int(request, "limit", DEFAULT_AUDIT_LIMIT, 1, MAX_AUDIT_LIMIT)
        records = await self._runtime.audit.recent(limit)
        return _json({"records": [_plain(record) for record in records]})

    async def _post_event(self, request: web.Request) -> web.Response:
        try:
            event_type = check_event_type(request.match_info["event_type"], "path event type")
        except EventNameError as err:
            raise RequestRejected(422, str(err)) from err
        try:
            check_outside_event(event_type)
        except EventOwnedError as err:
            raise RequestRejected(403, str(err)) from err
        key = _idempotency_key(request)
        data = await read_json_object(request, "the event data")
        intake = self._runtime.intake
        if intake is None:
            raise RequestRejected(503, "the daemon is starting; the event journal is not open yet")
        try:
            stored = await intake.accept(
                "http",
                event_type,
                data,
                source="http",
                bounded=True,
                key=f"http:{key}" if key is not None else None,
            )
        except (JournalFullError, BusClosedError, StoreError) as err:
            response = _error(503, str(err))
            response.headers["Retry-After"] = str(RETRY_AFTER)
            return response
        return _accepted(stored.event_id, stored.event_type, stored.duplicate)

    async def _call_tool(self, request: web.Request) -> web.Response:
        role, name = request.match_info["role"], request.match_info["tool"]
        try:
            tool = find_tool(self._runtime.registry.roles, role, name)
        except UnknownToolError as err:
            raise RequestRejected(404, str(err)) from err
        arguments = await read_json_object(request, "the tool's arguments")
        origin = {
            "channel_id": request.query.get("channel") or self._runtime.config.channels.default,
            "user_id": request.query.get("user"),
        }
        reply = await run_tool(tool, arguments, self._runtime.processor, role, origin)
        log.debug("http_tool_called", role=role, tool=name, success=reply["success"])
        return _json(reply, status=200 if reply["success"] else 422)


def _idempotency_key(request: web.Request) -> str | None:
    """Return the request's Idempotency-Key, or None; raise if it is malformed."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not (0 < len(key) <= MAX_KEY and key.isascii() and key.isprintable()):
        raise RequestRejected(
            400,
            f"header Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters; "
            "send a UUID, for example",
        )
    return key


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback ``host`` without a token."""
    if token or _is_loopback(host):
        return
    raise ConfigError(
        f"http.host {host!r} is not a loopback address and http.token is not set; set "
        "http.token (for example token: ${INTENTD_HTTP_TOKEN}) or bind to 127.0.0.1"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _describe_http_error(err: web.HTTPException, request: web.Request) -> str:
    if isinstance(err, web.HTTPRequestEntityTooLarge):
        return too_large(request.content_length)
    if isinstance(err, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(err.allowed_methods))
        return f"method {request.method} is not allowed on {request.path!r}; use {allowed}"
    if isinstance(err, web.HTTPNotFound):
        return (
            f"no route {request.method} {request.path!r}; the routes are GET /healthz, /readyz, "
            "/metrics, /status, /roles, /timers, /audit and POST /events/{EVENT_TYPE}, "
            "/roles/{ROLE}/tools/{TOOL}"
        )
    return f"{err.reason} for {request.method} {request.path!r}"


def _accepted(event_id: str, event_type: str, replayed: bool) -> web.Response:
    """Return the 202 for a stored event: the JSON ``json.dumps`` writes, built without it."""
    body = f'{{"event_id": {_json_string(event_id)}, "event_type": {_json_string(event_type)}}}'
    headers = _REPLAYED_HEADERS if replayed else _ACCEPTED_HEADERS
    return web.Response(body=body.encode(), status=202, headers=headers)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda value: json_rules.dumps(value, default=str)
    )


def _plain(item: Any) -> Any:
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {
            name: utc_iso(value) if isinstance(value, datetime) else value
            for name, value in dataclasses.asdict(item).items()
        }
    return item
