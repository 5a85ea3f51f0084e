"""Hostile requests over raw sockets: every answer is JSON, no header, body or query value reaches
an answer or the log, each refusal is logged once without a traceback."""

import asyncio
import io
import json
import logging

import pytest
import structlog

from supervisor.logs import configure_logging
from tests.supervisor.http_daemon import TOKEN, make_config, running_daemon

MARKER = "MARKER-7f3a9c"


@pytest.fixture
def log_stream():
    """Send every log line (ours and aiohttp's stdlib loggers) as JSON to a StringIO."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**saved)


async def exchange(port: int, request: bytes, *, close_after_send: bool = False) -> bytes:
    """Send ``request`` bytes on a fresh connection and return every byte answered until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if close_after_send:
            writer.write_eof()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def answers(raw: bytes) -> list[tuple[int, str, bytes]]:
    """Split raw HTTP/1.1 responses into (status, content type, body)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        found.append((int(lines[0].split()[1]), headers.get("content-type", ""), rest[:length]))
        raw = rest[length:]
    return found


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()
HOSTILE = {
    "control byte in the bearer token": (
        f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}{MARKER}\x01\r\n\r\n"
    ).encode(),
    "control byte in another header": (
        f"GET /status HTTP/1.1\r\nHost: x\r\n{AUTH.decode()}X-Note: {MARKER}\x01\r\n\r\n"
    ).encode(),
    "body after Connection: close without Content-Length": (
        f"POST /events/PING HTTP/1.1\r\nHost: x\r\n{AUTH.decode()}Content-Type: application/json"
        f'\r\nConnection: close\r\n\r\n{{"text": "{MARKER}"}}'
    ).encode(),
    "missing Host": f"GET /status HTTP/1.1\r\n{AUTH.decode()}X-M: {MARKER}\r\n\r\n".encode(),
    "duplicate Content-Length": (
        f"POST /events/PING HTTP/1.1\r\nHost: x\r\n{AUTH.decode()}Content-Length: 2\r\n"
        f"Content-Length: 3\r\nContent-Type: application/json\r\n\r\n{MARKER}"
    ).encode(),
    "Content-Length not a number": (
        f"POST /events/PING HTTP/1.1\r\nHost: x\r\n{AUTH.decode()}Content-Length: {MARKER}\r\n"
        "\r\n{}"
    ).encode(),
    "folded header line": (
        f"GET /status HTTP/1.1\r\nHost: x\r\n{AUTH.decode()}X-A: a\r\n {MARKER}\r\n\r\n"
    ).encode(),
    "header line over 8190 bytes": (
        f"GET /status HTTP/1.1\r\nHost: x\r\n{AUTH.decode()}X-Long: {MARKER * 1000}\r\n\r\n"
    ).encode(),
    "request line over 8190 bytes": (
        f"GET /status?q={MARKER * 1000} HTTP/1.1\r\nHost: x\r\n\r\n"
    ).encode(),
    "not HTTP at all": f"\x16\x03\x01{MARKER}\r\n\r\n".encode(),
    "bad chunked framing": (
        f"POST /events/PING HTTP/1.1\r\nHost: x\r\n{AUTH.decode()}Transfer-Encoding: chunked\r\n"
        f"Content-Type: application/json\r\n\r\nzz\r\n{MARKER}\r\n0\r\n\r\n"
    ).encode(),
}


@pytest.mark.parametrize("request_bytes", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_request_gets_json_and_leaves_no_secret_in_answer_or_log(
    tmp_path, log_stream, request_bytes
):
    async with running_daemon(make_config(tmp_path)) as daemon:
        port = daemon.supervisor.http.port
        raw = await exchange(port, request_bytes)
        async with daemon.session.get(daemon.url("/healthz")) as health:
            assert health.status == 200
    got = answers(raw)
    assert got, "the daemon answered nothing"
    for status, content_type, body in got:
        assert content_type.startswith("application/json")
        error = json.loads(body)
        assert status >= 400 and list(error) == ["error"] and "\n" not in error["error"]
    assert MARKER.encode() not in raw and TOKEN.encode() not in raw
    text = log_stream.getvalue()
    assert MARKER not in text and TOKEN not in text
    assert "Traceback" not in text and "exception" not in text
    rejected = [r for r in records(log_stream) if r["event"] == "http_request_rejected"]
    assert len(rejected) == len(got)
    assert all(set(r) >= {"method", "route", "status", "remote"} for r in rejected)


async def test_a_parser_refusal_is_logged_once_as_unparsed_and_counted(tmp_path, log_stream):
    async with running_daemon(make_config(tmp_path)) as daemon:
        raw = await exchange(daemon.supervisor.http.port, HOSTILE["folded header line"])
        requests = dict(daemon.supervisor.http.requests)
    assert answers(raw) == [
        (
            400,
            "application/json; charset=utf-8",
            json.dumps(
                {
                    "error": (
                        "the request is not well-formed HTTP/1.1 (a bad or duplicate header, "
                        "Content-Length, folded header line, missing Host, or data after "
                        "'Connection: close'); fix the client to send well-formed HTTP/1.1"
                    )
                }
            ).encode(),
        )
    ]
    [line] = [r for r in records(log_stream) if r["event"] == "http_request_rejected"]
    assert (line["method"], line["route"], line["status"], line["remote"]) == (
        "unparsed",
        "unparsed",
        400,
        "127.0.0.1",
    )
    assert requests[("unparsed", 400)] == 1


async def test_a_client_hanging_up_mid_body_is_counted_as_a_hang_up_not_a_500(tmp_path, log_stream):
    async with running_daemon(make_config(tmp_path)) as daemon:
        http = daemon.supervisor.http
        head = (
            f"POST /events/PING HTTP/1.1\r\nHost: x\r\n{AUTH.decode()}Content-Type: "
            f'application/json\r\nContent-Length: 1000\r\n\r\n{{"text": "{MARKER}'
        ).encode()
        _reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        writer.write(head)
        await writer.drain()
        writer.transport.abort()
        for _ in range(1000):  # wait (bounded) for the server to see the connection go
            if http.hangups:
                break
            await asyncio.sleep(0.01)
        assert dict(http.hangups) == {"/events/{event_type}": 1}
        assert not [key for key in http.requests if key[1] >= 500]
        async with daemon.session.get(daemon.url("/metrics")) as response:
            metrics = await response.text()
    assert 'intentd_http_client_hangups_total{route="/events/{event_type}"} 1.0' in metrics
    text = log_stream.getvalue()
    assert MARKER not in text and "Traceback" not in text and "exception" not in text


@pytest.mark.parametrize(
    "query", ["limit=%C2%B2", "limit=" + "9" * 5000, "limit=%EF%BC%91", "limit=1.5", "limit=+5"]
)
async def test_a_limit_that_is_not_ascii_digits_is_400_not_500(tmp_path, query):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.get(daemon.url(f"/audit?{query}")) as response:
            assert (response.status, await response.json()) == (
                400,
                {
                    "error": "query parameter limit must be a whole number from 1 to 1000 in ASCII "
                    "digits; send e.g. limit=50"
                },
            )


@pytest.mark.parametrize("body", [b'{"a": 1e400}', b'{"a": -1e400}', b'{"a": [NaN]}'])
async def test_json_overflowing_to_infinity_or_holding_nan_is_400(tmp_path, body):
    async with running_daemon(make_config(tmp_path)) as daemon:
        async with daemon.session.post(
            daemon.url("/events/PING"), data=body, headers={"Content-Type": "application/json"}
        ) as response:
            status, answer = response.status, await response.json()
        published = daemon.supervisor.message_bus.stats.published["PING"]
    assert status == 400 and answer["error"].startswith("request body: the JSON holds ")
    assert published == 0


async def test_the_audit_route_never_emits_infinity(tmp_path):
    async with running_daemon(make_config(tmp_path)) as daemon:
        sink = daemon.supervisor.intent_processor.audit_sink
        from common.intents import AuditIntent

        await daemon.supervisor.intent_processor.process_intents(
            [AuditIntent(action="late", details={"by": float("inf"), "n": float("nan")})]
        )
        assert await sink.recent(1)
        async with daemon.session.get(daemon.url("/audit?limit=1")) as response:
            text = await response.text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["records"][0]["details"] == {"by": None, "n": None}


@pytest.mark.parametrize(
    "event_type", ["TIMER_EXPIRED", "HEARTBEAT_TICK", "ROLE_LOADED", "WORKFLOW_DONE_SOMEHOW"]
)
async def test_a_daemon_owned_event_type_is_403_and_publishes_nothing(tmp_path, event_type):
    async with running_daemon(make_config(tmp_path)) as daemon:
        bus = daemon.supervisor.message_bus
        before = bus.stats.published[event_type]
        async with daemon.session.post(
            daemon.url(f"/events/{event_type}"), json={"late_by_s": "soon"}
        ) as response:
            status, answer = response.status, await response.json()
        after = bus.stats.published[event_type]
    assert (status, answer) == (
        403,
        {
            "error": (
                f"event type {event_type!r} is published by the daemon only (see DAEMON_EVENTS in "
                "common/events.py); publish USER_REQUEST or an event type of your own instead"
            )
        },
    )
    assert after == before
