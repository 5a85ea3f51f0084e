"""The HTTP API over real HTTP against a running daemon: routes, auth and hostile input."""

import asyncio
import json
import socket
import threading

import aiohttp
import pytest
from structlog.testing import capture_logs

from common.errors import ConfigError
from llm_provider.role_announcements import ANNOUNCED_EVENTS
from supervisor.config import HTTPConfig, ScheduleConfig
from supervisor.ops.http_api import MAX_BODY
from supervisor.supervisor import Supervisor
from tests.fakes.clock import FakeClock
from tests.supervisor.http_daemon import TOKEN, make_config, running_daemon


def published(daemon) -> int:
    """Count events published other than the registry's role announcements."""
    counts = daemon.supervisor.message_bus.stats.published
    return sum(n for event_type, n in counts.items() if event_type not in ANNOUNCED_EVENTS)


async def post_raw(daemon, path: str, body: bytes, content_type: str = "application/json"):
    async with daemon.session.post(
        daemon.url(path), data=body, headers={"Content-Type": content_type}
    ) as response:
        return response.status, await response.json()


async def test_healthz_answers_without_a_token(tmp_path):
    async with running_daemon(make_config(tmp_path), auth=False) as daemon:
        async with daemon.session.get(daemon.url("/healthz")) as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_readyz_reports_every_check_when_ready(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.get(daemon.url("/readyz")) as response:
            assert response.status == 200
            assert await response.json() == {
                "ready": True,
                "checks": {"bus": "ok", "roles": "ok", "store": "ok"},
            }


async def test_readyz_is_503_with_the_reason_when_a_check_fails(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        daemon.supervisor.readiness.add("store", lambda: "the store is not open")
        async with daemon.session.get(daemon.url("/readyz")) as response:
            assert response.status == 503
            body = await response.json()
    assert body["checks"] == {"bus": "ok", "roles": "ok", "store": "the store is not open"}
    assert body["error"] == "not ready: store: the store is not open"


async def test_readyz_reports_a_check_that_raises_as_not_ready(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        daemon.supervisor.readiness.add("slack", lambda: 1 / 0)
        async with daemon.session.get(daemon.url("/readyz")) as response:
            assert response.status == 503
            checks = (await response.json())["checks"]
    assert checks["slack"] == "the slack readiness check raised ZeroDivisionError: division by zero"


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, "this route needs an 'Authorization: Bearer <token>' header with http.token"),
        ("Bearer wrong-token", "the bearer token does not match http.token"),
        (
            f"Basic {TOKEN}",
            "this route needs an 'Authorization: Bearer <token>' header with http.token",
        ),
        ("Bearer", "this route needs an 'Authorization: Bearer <token>' header with http.token"),
    ],
)
async def test_a_missing_or_wrong_token_is_refused_and_publishes_nothing(tmp_path, header, error):
    async with running_daemon(make_config(tmp_path), auth=False) as daemon:
        headers = {"Authorization": header} if header else {}
        for method, path in [("GET", "/status"), ("GET", "/metrics"), ("POST", "/events/PING")]:
            async with daemon.session.request(
                method, daemon.url(path), headers=headers, json={}
            ) as response:
                assert (response.status, await response.json()) == (401, {"error": error})
        assert published(daemon) == 0


async def test_the_right_token_is_accepted(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.get(daemon.url("/status")) as response:
            assert response.status == 200


async def test_no_token_configured_means_no_auth_on_loopback(tmp_path):
    async with running_daemon(make_config(tmp_path, token=None), auth=False) as daemon:
        async with daemon.session.get(daemon.url("/status")) as response:
            assert response.status == 200


async def test_posting_an_event_publishes_it_from_source_http(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        seen = []
        daemon.supervisor.message_bus.subscribe(
            "probe", "PING", lambda data, ctx: seen.append((data, ctx))
        )
        async with daemon.session.post(daemon.url("/events/PING"), json={"n": 7}) as response:
            assert response.status == 202
            answer = await response.json()
        await daemon.supervisor.message_bus.drain()
    [(data, context)] = seen
    assert answer == {"event_id": context.event_id, "event_type": "PING"}
    assert (data, context.source) == ({"n": 7}, "http")


async def test_the_202_is_json_naming_the_stored_event_first_and_on_a_replay(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        seen = []
        daemon.supervisor.message_bus.subscribe(
            "probe", "PING", lambda data, ctx: seen.append(ctx.event_id)
        )
        answers = []
        for _ in range(2):
            async with daemon.session.post(
                daemon.url("/events/PING"), json={"n": 1}, headers={"Idempotency-Key": "k-1"}
            ) as response:
                answers.append(
                    (
                        response.status,
                        response.headers["Content-Type"],
                        response.headers.get("Idempotent-Replayed"),
                        await response.text(),
                    )
                )
        await daemon.supervisor.message_bus.drain()
    [event_id] = seen
    body = json.dumps({"event_id": event_id, "event_type": "PING"})
    assert answers == [
        (202, "application/json; charset=utf-8", None, body),
        (202, "application/json; charset=utf-8", "true", body),
    ]


async def test_an_event_posted_over_http_reaches_the_roles_intents(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.post(daemon.url("/events/PING"), json={"n": 1}) as response:
            assert response.status == 202
        await daemon.supervisor.message_bus.drain()
        [record] = await daemon.supervisor.intent_processor.audit_sink.recent(10)
    assert (record.action, record.details, record.role) == ("ping", {"n": 1}, "echo")


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("ping", "path event type 'ping' is not an UPPER_SNAKE_CASE name; use 'PING'"),
        (
            "Timer-Expired",
            "path event type 'Timer-Expired' is not an UPPER_SNAKE_CASE name; use 'TIMER_EXPIRED'",
        ),
        (
            "A" * 129,
            f"path event type {'A' * 129!r} is not an UPPER_SNAKE_CASE name of at most 128 "
            "characters, such as 'TIMER_EXPIRED'",
        ),
    ],
)
async def test_a_malformed_event_name_is_422_and_publishes_nothing(tmp_path, name, error):
    async with running_daemon(make_config(tmp_path)) as daemon:
        assert await post_raw(daemon, f"/events/{name}", b"{}") == (422, {"error": error})
        assert published(daemon) == 0


async def test_a_body_over_64_kib_is_413_and_publishes_nothing(tmp_path):
    body = json.dumps({"pad": "x" * MAX_BODY}).encode()
    async with running_daemon(make_config(tmp_path)) as daemon:
        status, answer = await post_raw(daemon, "/events/PING", body)
        assert published(daemon) == 0
    assert status == 413
    assert answer == {
        "error": f"request body of {len(body)} bytes is over the 65536-byte limit; "
        "send a smaller JSON object"
    }


async def test_a_chunked_body_over_64_kib_is_413(tmp_path):
    async def chunks():
        for _ in range(5):
            yield b" " * (MAX_BODY // 4)

    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.post(
            daemon.url("/events/PING"), data=chunks(), headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 413
            assert "is over the 65536-byte limit" in (await response.json())["error"]
        assert published(daemon) == 0


async def test_a_body_of_exactly_64_kib_is_accepted(tmp_path):
    prefix = b'{"pad": "'
    body = prefix + b"x" * (MAX_BODY - len(prefix) - 2) + b'"}'
    assert len(body) == MAX_BODY
    async with running_daemon(make_config(tmp_path)) as daemon:
        status, _ = await post_raw(daemon, "/events/PING", body)
    assert status == 202


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b"{not json",
            "request body: the text is not valid JSON (Expecting property name enclosed in double "
            'quotes at line 1 column 2); send JSON such as {"key": "value"}',
        ),
        (
            b"",
            "request body: the text is not valid JSON (Expecting value at line 1 column 1); "
            'send JSON such as {"key": "value"}',
        ),
        (
            b'{"a": NaN}',
            "request body: the JSON holds NaN, which is not a JSON number; send a finite number",
        ),
        (b'{"a": "\xff"}', "request body: the text is not UTF-8 (byte 7); send UTF-8 encoded JSON"),
        (b"[" * 50_000, "request body: the JSON is nested too deeply; send a flatter object"),
    ],
)
async def test_invalid_json_is_400_and_publishes_nothing(tmp_path, body, error):
    async with running_daemon(make_config(tmp_path)) as daemon:
        status, answer = await post_raw(daemon, "/events/PING", body)
        assert published(daemon) == 0
    assert (status, answer) == (400, {"error": error})


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[1, 2]", "array"),
        (b'"hi"', "string"),
        (b"3.5", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
    ],
)
async def test_a_body_that_is_not_an_object_is_422(tmp_path, body, kind):
    async with running_daemon(make_config(tmp_path)) as daemon:
        status, answer = await post_raw(daemon, "/events/PING", body)
        assert published(daemon) == 0
    assert (status, answer) == (
        422,
        {
            "error": f"request body must be a JSON object, got a JSON {kind}; "
            'wrap it as {"value": ...}'
        },
    )


async def test_a_body_that_is_not_declared_json_is_415(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        status, answer = await post_raw(daemon, "/events/PING", b'{"a": 1}', "text/plain")
        assert published(daemon) == 0
    assert (status, answer) == (
        415,
        {
            "error": "the request's Content-Type is not accepted; "
            "send the event data as 'Content-Type: application/json'"
        },
    )


async def test_an_unknown_route_is_a_json_404(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.get(daemon.url("/nope")) as response:
            assert response.status == 404
            assert (await response.json())["error"].startswith(
                "no route GET '/nope'; the routes are"
            )


async def test_an_unknown_route_without_a_token_is_401(tmp_path):
    async with running_daemon(make_config(tmp_path), auth=False) as daemon:
        async with daemon.session.get(daemon.url("/nope")) as response:
            assert response.status == 401


async def test_a_wrong_method_is_a_json_405(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.get(daemon.url("/events/PING")) as response:
            assert (response.status, await response.json()) == (
                405,
                {"error": "method GET is not allowed on '/events/PING'; use POST"},
            )


async def test_roles_lists_each_loaded_role(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.get(daemon.url("/roles")) as response:
            assert response.status == 200
            roles = (await response.json())["roles"]
    assert roles == [
        {
            "name": "echo",
            "version": "1.0.0",
            "description": "Echo test role",
            "path": str(tmp_path / "roles" / "echo.py"),
            "llm_type": "WEAK",
            "fast_reply": False,
            "when_to_use": None,
            "parameters": {},
            "events": ["BAD_INTENT", "BOOM", "PING"],
            "intents": [],
            "tools": [],
        }
    ]


async def test_audit_returns_the_newest_records_first_up_to_limit(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        for n in range(3):
            async with daemon.session.post(daemon.url("/events/PING"), json={"n": n}):
                pass
        await daemon.supervisor.message_bus.drain()
        async with daemon.session.get(daemon.url("/audit?limit=2")) as response:
            assert response.status == 200
            records = (await response.json())["records"]
    assert [record["details"] for record in records] == [{"n": 2}, {"n": 1}]
    assert records[0]["role"] == "echo"


@pytest.mark.parametrize("limit", ["0", "abc", "-1", "1001", ""])
async def test_audit_refuses_a_bad_limit(tmp_path, limit):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.get(daemon.url(f"/audit?limit={limit}")) as response:
            assert (response.status, await response.json()) == (
                400,
                {
                    "error": "query parameter limit must be a whole number from 1 to 1000 in "
                    "ASCII digits; send e.g. limit=50"
                },
            )


async def test_timers_lists_the_pending_timers_of_the_timer_service(tmp_path):
    clock = FakeClock()
    async with running_daemon(make_config(tmp_path), clock=clock) as daemon:
        async with daemon.session.get(daemon.url("/timers")) as response:
            assert await response.json() == {"timers": []}
        timers = daemon.supervisor.timers
        tea = await timers.create(duration=60, label="tea", channel_id="console")
        await timers.cancel(await timers.create(duration=90, label="cancelled"))
        async with daemon.session.get(daemon.url("/timers")) as response:
            listed = (await response.json())["timers"]
    assert [(t["timer_id"], t["label"], t["due"], t["state"]) for t in listed] == [
        (tea, "tea", "2027-01-15T08:01:00Z", "pending")
    ]


async def test_a_route_that_fails_answers_a_json_500_and_the_daemon_carries_on(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        daemon.supervisor.store.db.execute("DROP TABLE timers")
        async with daemon.session.get(daemon.url("/timers")) as response:
            assert (response.status, await response.json()) == (
                500,
                {"error": "GET /timers failed (OperationalError); the daemon log has the details"},
            )
        async with daemon.session.get(daemon.url("/healthz")) as response:
            assert response.status == 200


def test_constructing_a_supervisor_binds_no_port_and_starts_no_thread(tmp_path):
    threads = threading.active_count()
    sup = Supervisor(config=make_config(tmp_path))
    assert (sup.http, threading.active_count()) == (None, threads)


async def test_status_reports_uptime_roles_heartbeat_and_contributed_fields(tmp_path):
    clock = FakeClock()
    async with running_daemon(make_config(tmp_path), clock=clock) as daemon:
        await clock.advance(31)
        daemon.supervisor.status.add("outbox_depth", lambda: 4)
        measured = await daemon.supervisor.loop_lag.next_sample()  # real time: the loop's own
        async with daemon.session.get(daemon.url("/status")) as response:
            status = await response.json()
    assert status.pop("loop_lag_ms") == round(measured * 1000, 1)
    assert status == {
        "started_at": "2027-01-15T08:00:00Z",
        "uptime_s": 31.0,
        "ready": True,
        "not_ready": {},
        "roles": ["echo"],
        "bus_queue_depth": 0,
        "events_published": 8,  # ROLE_LOADED, 6 fast heartbeats, 1 heartbeat
        "active_workflows": 0,
        "last_heartbeat": "2027-01-15T08:00:30Z",
        "last_heartbeat_age_s": 1.0,
        "pending_timers": 0,
        "outbox_depth": 4,
        "dead_letters": 0,
        "journal_backlog": 0,
        "journal_oldest_age_s": 0.0,
        "dead_events": 0,
        "schedules": [],
        "instances": None,  # one process on SQLite
    }


async def test_status_lists_each_schedule_with_its_next_run(tmp_path):
    config = make_config(tmp_path).model_copy(
        update={"schedules": [ScheduleConfig(name="standup", event="STANDUP_DUE", every=90.0)]}
    )
    clock = FakeClock()
    with capture_logs() as logs:
        async with running_daemon(config, clock=clock) as daemon:
            await clock.advance(100)
            async with daemon.session.get(daemon.url("/status")) as response:
                status = await response.json()
    armed = [
        (e["schedule"], e["event_type"], e["next_run"])
        for e in logs
        if e["event"] == "schedule_armed"
    ]
    assert status["schedules"] == [
        {"name": "standup", "event": "STANDUP_DUE", "next_run": "2027-01-15T08:03:00Z"}
    ]
    assert armed == [
        ("standup", "STANDUP_DUE", "2027-01-15T08:01:30Z"),
        ("standup", "STANDUP_DUE", "2027-01-15T08:03:00Z"),
    ]


def test_the_daemon_refuses_a_non_loopback_address_without_a_token(tmp_path):
    config = make_config(tmp_path, token=None, host="0.0.0.0")
    with pytest.raises(ConfigError) as err:
        Supervisor(config=config)
    assert str(err.value) == (
        "http.host '0.0.0.0' is not a loopback address and http.token is not set; set "
        "http.token (for example token: ${INTENTD_HTTP_TOKEN}) or bind to 127.0.0.1"
    )


def test_a_non_loopback_address_with_a_token_is_allowed(tmp_path):
    Supervisor(config=make_config(tmp_path, token=TOKEN, host="0.0.0.0"))


async def test_a_port_in_use_is_a_clear_config_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config(tmp_path).model_copy(update={"http": HTTPConfig(port=port)})
        with pytest.raises(ConfigError) as err:
            await Supervisor(config=config).run()
    assert str(err.value).startswith(f"http: cannot listen on '127.0.0.1' port {port} (")


async def test_the_api_stops_answering_when_the_daemon_stops(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        url, session = daemon.url("/healthz"), daemon.session
        daemon.supervisor.stop()
        await asyncio.wait_for(_until_refused(session, url), 5)


async def _until_refused(session: aiohttp.ClientSession, url: str) -> None:
    while True:
        try:
            async with session.get(url):
                pass
        except aiohttp.ClientConnectionError:
            return
        await asyncio.sleep(0.01)
